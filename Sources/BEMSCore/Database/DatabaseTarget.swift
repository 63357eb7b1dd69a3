import Foundation
import Logging

/// Where an environment's database is: the libpq connection string comes from the environment variable that
/// pipeline.json names for it (`environments.<env>.databaseURLEnv`, default `BEMS_<ENV>_DATABASE_URL`).
///
/// A libpq keyword/value string or URI, so `PG*` variables, `.pgpass` and `sslmode` work as in psql. The string is
/// never logged; use ``ConnectionString/redacted(_:)`` to show it.
package struct DatabaseTarget: Sendable {
    package var env: String
    package var conninfo: String
    package var variable: String
    /// How connection attempts and chunk loads are retried after transient errors (`environments.<env>.retry`).
    package var retry = RetryPolicy()
    /// `statement_timeout` in milliseconds for the sessions that load chunks (`environments.<env>.statementTimeout`);
    /// `nil` keeps the server's or the role's setting.
    package var statementTimeoutMilliseconds: Int?
    /// The `application_name` sessions get when the connection string sets none (libpq's
    /// `fallback_application_name`), so an operator can find a stage's sessions in `pg_stat_activity`.
    package var applicationName: String?

    /// Resolves the connection string of `env`.
    ///
    /// - Throws: ``PipelineError`` 64 when the environment is unknown or its variable is unset.
    package static func resolve(
        config: PipelineConfig, env: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> DatabaseTarget {
        guard let settings = config.environments[env] else {
            throw PipelineError.usage("unknown environment \"\(env)\"")
        }
        guard let value = environment[settings.databaseURLEnv], !value.isEmpty else {
            throw PipelineError.usage(
                "\(settings.databaseURLEnv) is not set: set it to the \(env) database's libpq URI "
                    + "(make demo starts a local PostgreSQL for dev when it is unset)")
        }
        return DatabaseTarget(
            env: env, conninfo: value, variable: settings.databaseURLEnv, retry: settings.retry,
            statementTimeoutMilliseconds: settings.statementTimeoutMilliseconds)
    }

    /// Opens one connection, without retrying, named ``applicationName`` unless the connection string names it.
    ///
    /// - Throws: ``PostgresError`` (``PostgresError/isTransient`` tells whether another attempt might work).
    package func open(logger: Logger? = nil) throws(PostgresError) -> PGConnection {
        try PGConnection(conninfo: conninfo, logger: logger, fallbackApplicationName: applicationName)
    }

    /// Opens a connection, retrying transient failures (refused, server starting up or shutting down, too many
    /// connections) as ``retry`` allows; authentication and conninfo errors fail at once.
    ///
    /// - Throws: ``PipelineError`` 69 (database unavailable) with the redacted reason.
    package func connect(logger: Logger? = nil) throws -> PGConnection {
        do {
            return try retry.run("connect", logger: logger) { try open(logger: logger) }
        } catch {
            throw PipelineError(.unavailable, "cannot connect to the \(env) database (\(variable)): \(error)")
        }
    }
}
