import BEMSCore
import Foundation

/// The service-role tokens of the admin API, one per environment, from the variable each environment names
/// (`environments.<env>.serviceTokenEnv`, default `BEMS_<ENV>_SERVICE_TOKEN`; process environment or `.env.<env>`).
///
/// A request sends `Authorization: Bearer <token>`. The token is compared with every environment's token, always all
/// of them and in constant time (SHA-256 digests of both sides compared byte by byte without an early exit), so
/// neither the timing nor the answer tells how much of a wrong token was right. Tokens are kept only as digests and
/// never logged or echoed.
package struct ServiceTokens: Sendable {
    /// How a request's credentials compare with the environment it asks for.
    package enum Verdict: Equatable, Sendable {
        /// The token is the requested environment's.
        case allowed
        /// No `Authorization: Bearer` header (401).
        case missing
        /// The token is no environment's (401).
        case invalid
        /// The token is valid, but for another environment (403).
        case otherEnvironment(String)
    }

    /// Whose token a request holds.
    package enum Identity: Equatable, Sendable {
        case missing
        case invalid
        /// The token of this environment.
        case environment(String)
    }

    /// The shortest token accepted: shorter ones are refused at start-up.
    package static let minimumLength = 16

    /// SHA-256 of each environment's token (environments without a token are absent).
    private let digests: [(env: String, digest: [UInt8])]

    /// Reads the tokens.
    ///
    /// - Parameter variables: Each environment's variables (process environment over `.env.<env>`).
    package init(config: PipelineConfig, variables: [String: [String: String]]) {
        digests = config.environments.keys.sorted().compactMap { env in
            let name = config.environments[env]!.serviceTokenVariable(env: env)
            guard let token = variables[env]?[name], !token.isEmpty else { return nil }
            return (env, Self.digest(token))
        }
    }

    /// The environments that have a token.
    package var environments: [String] { digests.map(\.env) }

    /// Why `env` cannot be served: its token variable is unset, empty or too short; `nil` when it is usable.
    package static func problem(config: PipelineConfig, env: String, variables: [String: String]) -> String? {
        guard let settings = config.environments[env] else { return "unknown environment \"\(env)\"" }
        let name = settings.serviceTokenVariable(env: env)
        guard let token = variables[name], !token.isEmpty else {
            return "\(name) is not set (in the environment or \(EnvironmentFile.name(env: env))): set it to the \(env) "
                + "service-role token the admin API accepts"
        }
        guard token.utf8.count >= minimumLength else {
            return "\(name) is shorter than \(minimumLength) characters: use a long random token "
                + "(e.g. openssl rand -hex 32)"
        }
        return nil
    }

    /// Checks an `Authorization` header value against the token of `env`.
    package func check(authorization: String?, env: String) -> Verdict {
        switch identify(authorization: authorization) {
        case .missing: .missing
        case .invalid: .invalid
        case .environment(let matched): matched == env ? .allowed : .otherEnvironment(matched)
        }
    }

    /// Whose token an `Authorization` header value holds: `.otherEnvironment(env)` names the environment, before the
    /// request says which one it wants.
    package func identify(authorization: String?) -> Identity {
        guard let token = Self.bearerToken(authorization) else { return .missing }
        let presented = Self.digest(token)
        var matched: String?
        // Every environment's digest is compared, whatever matched before.
        for entry in digests where Self.constantTimeEqual(entry.digest, presented) {
            matched = entry.env
        }
        return matched.map(Identity.environment) ?? .invalid
    }

    /// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive), or `nil`.
    package static func bearerToken(_ header: String?) -> String? {
        guard let header else { return nil }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let token = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// Compares two byte strings of the same length without an early exit.
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    private static func digest(_ token: String) -> [UInt8] { Array(Digest.sha256Hex(Array(token.utf8)).utf8) }
}
