import Foundation

extension ExitStatus {
    /// A short name for reports, metrics and Sentry tags: `ok`, `unexpected`, `usage`, `data`, `no_input`,
    /// `unavailable`, `locked`, `io`, `over_limit`, `not_permitted`.
    package var name: String {
        switch self {
        case .ok: return "ok"
        case .unexpected: return "unexpected"
        case .usage: return "usage"
        case .dataError: return "data"
        case .noInput: return "no_input"
        case .unavailable: return "unavailable"
        case .cantCreate: return "locked"
        case .ioError: return "io"
        case .overLimit: return "over_limit"
        case .noPermission: return "not_permitted"
        }
    }
}

/// Turns an error into a ``Failure``: a code, the kind of operation that failed (Sentry groups by it) and a message
/// without secrets.
///
/// | Error | operation |
/// |---|---|
/// | exit 64 | `config` |
/// | exit 65 | validate, normalize: `parse`; dedupe: `dedupe`; load: `copy` (`verify` when the message says so) |
/// | exit 66 | `input` |
/// | exit 69, SQLSTATE class 08, connection errors | `connect` |
/// | exit 73 | `lock` |
/// | exit 74 | `checksum` when a SHA-256 check failed, `io` otherwise |
/// | exit 75 | `storage` |
/// | exit 77, SQLSTATE 42501 | `permission` |
/// | SQLSTATE 57014 | `timeout`; class 23: `constraint`; COPY errors: `copy`; other SQL errors: `query` |
/// | anything else | `unexpected` |
package enum FailureClassifier {
    /// Classifies `error`, thrown by `stage`, which makes the command exit with `exitStatus`.
    ///
    /// - Parameter secrets: Strings to mask wherever they appear (connection strings, tokens), on top of the
    ///   patterns ``SecretScrubber`` always masks.
    package static func classify(
        _ error: any Error, stage: Stage, exitStatus: ExitStatus, secrets: [String] = []
    ) -> Failure {
        let text = String(describing: error)
        let message = SecretScrubber.scrub(text, secrets: secrets)
        let sqlState = (error as? PostgresError)?.sqlState ?? embeddedSQLState(text)
        if let pg = error as? PostgresError {
            return Failure(
                code: pg.sqlState.map { "sqlstate_\($0)" } ?? slug(pg.code.description),
                operation: operation(of: pg), sqlState: pg.sqlState, message: message)
        }
        return Failure(
            code: exitStatus.name, operation: operation(exitStatus, stage: stage, text: text, sqlState: sqlState),
            sqlState: sqlState, message: message)
    }

    static func operation(of pg: PostgresError) -> String {
        if pg.code == .connectionFailed || pg.code == .connectionLost { return "connect" }
        if let s = pg.sqlState {
            if s.hasPrefix("08") { return "connect" }
            if s == "42501" { return "permission" }
            if s == "57014" { return "timeout" }
            if s.hasPrefix("23") { return "constraint" }
        }
        return pg.code == .copyFailed ? "copy" : "query"
    }

    static func operation(_ status: ExitStatus, stage: Stage, text: String, sqlState: String?) -> String {
        switch status {
        case .usage: return "config"
        case .dataError:
            switch stage {
            case .validate, .normalize: return "parse"
            case .dedupe: return "dedupe"
            case .load: return text.lowercased().contains("verify") ? "verify" : "copy"
            case .refresh: return "refresh"
            }
        case .noInput: return "input"
        case .unavailable: return "connect"
        case .cantCreate: return "lock"
        case .ioError: return text.contains("SHA-256") || text.contains("checksum") ? "checksum" : "io"
        case .overLimit: return "storage"
        case .noPermission: return "permission"
        case .ok, .unexpected:
            if let s = sqlState, s.hasPrefix("08") { return "connect" }
            return "unexpected"
        }
    }

    /// The first `[XXXXX]` SQLSTATE in a message (``PostgresError`` descriptions carry one).
    static func embeddedSQLState(_ text: String) -> String? {
        let b = Array(text.utf8)
        var i = 0
        while i + 6 < b.count {
            if b[i] == UInt8(ascii: "["), b[i + 6] == UInt8(ascii: "]"),
                b[(i + 1)...(i + 5)].allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) }),
                b[(i + 1)...(i + 5)].contains(where: { $0 >= 48 && $0 <= 57 })
            {
                return String(decoding: b[(i + 1)...(i + 5)], as: UTF8.self)
            }
            i += 1
        }
        return nil
    }

    static func slug(_ s: String) -> String {
        String(s.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}
