import BEMSCore
import Foundation

/// Whether an environment's database answers: one connection with a 2-second connect timeout and `SELECT 1`.
///
/// The answer never carries libpq's message: it names the host, port or socket, which the API does not show.
package enum DatabaseProbe {
    package struct Result: Codable, Equatable, Sendable {
        /// `up` or `down`.
        package var database: String
        /// Why it is down, without connection details (`BEMS_DEV_DATABASE_URL: cannot connect`).
        package var reason: String?

        package var isUp: Bool { database == "up" }

        package static let up = Result(database: "up", reason: nil)
        package static func down(_ reason: String) -> Result { Result(database: "down", reason: reason) }
    }

    /// The connect timeout in seconds (libpq's smallest useful value).
    package static let connectTimeoutSeconds = 2

    /// Checks `env`'s database.
    ///
    /// - Parameters:
    ///   - variables: The environment's variables (process environment over `.env.<env>`).
    ///   - startEmbedded: dev without a URL: start the embedded PostgreSQL in `<workDir>/pg` if it is not running,
    ///     as every stage does (an import); otherwise (`/healthz`) only look at it.
    package static func check(
        config: PipelineConfig, env: String, variables: [String: String], startEmbedded: Bool
    ) -> Result {
        guard let settings = config.environments[env] else { return .down("unknown environment") }
        let variable = settings.databaseURLEnv
        let target: DatabaseTarget
        if let url = variables[variable], !url.isEmpty {
            do {
                target = try DatabaseTarget.resolve(config: config, env: env, environment: variables)
            } catch {
                return .down("\(variable) is not a usable connection string")
            }
        } else if env == "dev" {
            let embedded = EmbeddedPostgres(directory: config.workDir + "/pg")
            if startEmbedded {
                do {
                    target = try DatabaseTarget.resolve(config: config, env: env, environment: variables)
                } catch {
                    return .down("the embedded dev PostgreSQL cannot start")
                }
            } else {
                target = DatabaseTarget(env: env, conninfo: embedded.url, variable: "embedded")
            }
        } else {
            return .down("\(variable) is not set")
        }
        let what = variable.isEmpty || variables[variable]?.isEmpty ?? true ? "the embedded dev PostgreSQL" : variable
        let conninfo = ConnectionString.adding("connect_timeout", String(connectTimeoutSeconds), to: target.conninfo)
        do {
            let db = try PGConnection(conninfo: conninfo, fallbackApplicationName: "bems-serve")
            _ = try db.exec("SELECT 1")
            return .up
        } catch {
            return .down("\(what): cannot connect")
        }
    }
}

/// Runs blocking work (libpq, waiting for files) on a thread of its own, off the cooperative pool that serves the
/// requests.
package func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
