import Foundation

/// Masks secrets (and, for messages that leave the machine, row values) in free text.
///
/// Always masked:
/// - the strings passed as `secrets` (a connection string, its password, a DSN, a webhook URL);
/// - `postgresql://` and `postgres://` URIs, through ``ConnectionString/redacted(_:)``;
/// - `password=…` (keyword/value conninfo, quoted or not) and `password: …`;
/// - the user-info part of any other URL (`https://user:token@host`, a Sentry DSN's key).
///
/// With `values: true` (Sentry events and webhook messages) also row values: PostgreSQL's `Key (…)=(…)` and
/// `Failing row contains (…)` details and anything in double quotes.
package enum SecretScrubber {
    /// The replacement text.
    package static let mask = ConnectionString.mask

    /// Returns `text` with every secret masked.
    package static func scrub(_ text: String, secrets: [String] = [], values: Bool = false) -> String {
        var out = text
        for secret in secrets.filter({ $0.count >= 4 }).sorted(by: { $0.count > $1.count }) {
            out = out.replacing(secret, with: mask)
        }
        out = out.replacing(postgresURI) { match in ConnectionString.redacted(String(match.output[0].substring ?? "")) }
        out = out.replacing(passwordKeyword) { match in
            (match.output[1].substring.map(String.init) ?? "password=") + mask
        }
        out = out.replacing(urlUserInfo) { match in
            (match.output[1].substring.map(String.init) ?? "") + mask + "@"
        }
        if values {
            out = out.replacing(keyValues, with: "=(…)")
            out = out.replacing(failingRow, with: "Failing row contains (…)")
            out = out.replacing(quoted, with: "\"…\"")
        }
        return out
    }

    /// The secrets of a libpq connection string: the whole string and its password.
    package static func secrets(ofConninfo conninfo: String) -> [String] {
        var list = [conninfo]
        if let password = ConnectionString.options(conninfo)?["password"], !password.isEmpty { list.append(password) }
        return list
    }

    // `nonisolated(unsafe)`: Regex is not Sendable, but these are immutable after initialization.
    nonisolated(unsafe) private static let postgresURI = try! Regex(#"(?i)postgres(?:ql)?://[^\s"'<>]*"#)
    nonisolated(unsafe) private static let passwordKeyword = try! Regex(
        #"(?i)(password\s*[=:]\s*)(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;)]+)"#)
    nonisolated(unsafe) private static let urlUserInfo = try! Regex(
        #"(?i)\b((?!postgres(?:ql)?://)[a-z][a-z0-9+.-]*://)[^\s/@"'<>]+@"#)
    nonisolated(unsafe) private static let keyValues = try! Regex(#"=\([^)]*\)"#)
    nonisolated(unsafe) private static let failingRow = try! Regex(#"Failing row contains \([^)]*\)"#)
    nonisolated(unsafe) private static let quoted = try! Regex(#""[^"\n]*""#)
}
