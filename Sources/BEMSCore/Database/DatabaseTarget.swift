import Foundation
import Logging

/// Where an environment's database is: the libpq connection string comes from the environment variable that
/// pipeline.json names for it (`environments.<env>.databaseURLEnv`, default `BEMS_<ENV>_DATABASE_URL`), set in the
/// process environment or in a `.env.<env>` file in the current directory.
///
/// A libpq keyword/value string or URI, so `PG*` variables, `.pgpass` and `sslmode` work as in psql. The string is
/// never logged; use ``ConnectionString/redacted(_:)`` to show it.
///
/// Rules (README, Environments):
/// - dev without a URL uses the embedded PostgreSQL in `<workDir>/pg` (``EmbeddedPostgres``), started on demand;
///   staging and prod never fall back to it.
/// - staging and prod get `sslmode=require` unless the string (or `PGSSLMODE`) chooses a mode: Supabase requires TLS.
/// - A transaction-mode pooler is refused: port 6543 (Supabase's transaction pooler) at resolution, any other pooler
///   that rotates server sessions when a connection opens (``connect(logger:)``).
/// - prod refuses a superuser connection unless ``allowSuperuser`` is set (`--allow-superuser`).
package struct DatabaseTarget: Sendable {
    package var env: String
    package var conninfo: String
    /// Where the string came from, for messages: the variable name, or the embedded database.
    package var variable: String
    /// How connection attempts and chunk loads are retried after transient errors (`environments.<env>.retry`).
    package var retry = RetryPolicy()
    /// prod only: accept a superuser connection.
    package var allowSuperuser = false
    /// `statement_timeout` in milliseconds for the sessions that load chunks (`environments.<env>.statementTimeout`);
    /// `nil` keeps the server's or the role's setting.
    package var statementTimeoutMilliseconds: Int?
    /// The `application_name` sessions get when the connection string sets none (libpq's
    /// `fallback_application_name`), so an operator can find a stage's sessions in `pg_stat_activity`.
    package var applicationName: String?
    /// `lock_timeout` and `idle_in_transaction_session_timeout` set on every session (`environments.<env>`);
    /// `nil` keeps the server's setting.
    package var lockTimeoutMilliseconds: Int?
    package var idleInTransactionTimeoutMilliseconds: Int?
    /// Paces connection attempts (`environments.<env>.rateLimit.connectionsPerSecond`), shared by every copy.
    package var connectLimiter: RateLimiter?

    package init(
        env: String, conninfo: String, variable: String, retry: RetryPolicy = RetryPolicy(),
        statementTimeoutMilliseconds: Int? = nil
    ) {
        self.env = env
        self.conninfo = conninfo
        self.variable = variable
        self.retry = retry
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
    }

    /// Supabase's transaction-mode pooler port; COPY, advisory locks and exported snapshots need a session.
    package static let transactionPoolerPort = "6543"

    /// Resolves the connection string of `env`.
    ///
    /// - Parameters:
    ///   - environment: The variables to read; `nil` reads the process environment over `.env.<env>`.
    ///   - logger: Told when the embedded dev database starts.
    /// - Throws: ``PipelineError`` 64 when the environment is unknown, its variable is unset (staging, prod) or not a
    ///   connection string, or it names a transaction pooler; 69 when the embedded database cannot start.
    package static func resolve(
        config: PipelineConfig, env: String, environment: [String: String]? = nil, logger: Logger? = nil
    ) throws -> DatabaseTarget {
        guard let settings = config.environments[env] else {
            throw PipelineError.usage("unknown environment \"\(env)\"")
        }
        let variables = try environment ?? EnvironmentFile.merged(env: env)
        guard let value = variables[settings.databaseURLEnv], !value.isEmpty else {
            guard env == "dev" else {
                throw PipelineError.usage(
                    "\(settings.databaseURLEnv) is not set (in the environment or \(EnvironmentFile.name(env: env))): "
                        + "set it to the \(env) database's libpq URI; \(env) never falls back to the embedded local database")
            }
            let embedded = EmbeddedPostgres(directory: config.workDir + "/pg")
            try embedded.start(logger: logger)
            var target = DatabaseTarget(
                env: env, conninfo: embedded.url, variable: "the embedded dev PostgreSQL in \(embedded.directory)")
            target.apply(settings)
            return target
        }
        guard let options = ConnectionString.options(value) else {
            throw PipelineError.usage(
                "\(settings.databaseURLEnv) is not a libpq connection string or URI (its value is not shown: it may hold a password)")
        }
        let port = options["port"] ?? variables["PGPORT"]
        if port == transactionPoolerPort {
            throw PipelineError.usage(
                "\(settings.databaseURLEnv) points at port 6543, Supabase's transaction-mode pooler: bulk COPY, advisory "
                    + "locks and snapshots need a session. Use the direct connection or the pooler's session mode (port 5432)")
        }
        var conninfo = value
        if env != "dev", options["sslmode"] == nil, variables["PGSSLMODE"] == nil {
            conninfo = ConnectionString.adding("sslmode", "require", to: conninfo)
        }
        var target = DatabaseTarget(env: env, conninfo: conninfo, variable: settings.databaseURLEnv)
        target.apply(settings)
        return target
    }

    /// Opens one connection, without retrying, named ``applicationName`` unless the connection string names it.
    ///
    /// - Throws: ``PostgresError`` (``PostgresError/isTransient`` tells whether another attempt might work).
    package func open(logger: Logger? = nil) throws(PostgresError) -> PGConnection {
        connectLimiter?.acquire(1)
        let db = try PGConnection(conninfo: conninfo, logger: logger, fallbackApplicationName: applicationName)
        if let ms = lockTimeoutMilliseconds { try db.exec("SET lock_timeout = \(ms)") }
        if let ms = idleInTransactionTimeoutMilliseconds { try db.exec("SET idle_in_transaction_session_timeout = \(ms)") }
        return db
    }

    /// Copies the environment's session settings and limits onto a resolved target.
    mutating func apply(_ settings: PipelineConfig.Environment) {
        retry = settings.retry
        statementTimeoutMilliseconds = settings.statementTimeoutMilliseconds
        lockTimeoutMilliseconds = settings.lockTimeoutMilliseconds
        idleInTransactionTimeoutMilliseconds = settings.idleInTransactionTimeoutMilliseconds
        connectLimiter = settings.rateLimit.connectionsPerSecond.map { RateLimiter(rate: $0, burst: 1) }
    }

    /// Opens a connection, retrying transient failures (refused, server starting up or shutting down, too many
    /// connections) as ``retry`` allows; authentication and conninfo errors fail at once. Then checks the session:
    /// not a superuser in prod (unless allowed), not behind a transaction-mode pooler.
    ///
    /// - Throws: ``PipelineError`` 69 (database unavailable) with the redacted reason; 77 for a prod superuser;
    ///   64 for a transaction pooler.
    package func connect(logger: Logger? = nil) throws -> PGConnection {
        let db: PGConnection
        do {
            db = try retry.run("connect", logger: logger) { try open(logger: logger) }
        } catch {
            throw PipelineError(.unavailable, "cannot connect to the \(env) database (\(variable)): \(error)")
        }
        if env == "prod", !allowSuperuser, db.parameterStatus("is_superuser") == "on" {
            throw PipelineError(
                .noPermission,
                "the prod connection (\(variable)) is a superuser: use the importer role (bems setup --create-role), "
                    + "or pass --allow-superuser")
        }
        try checkSession(db)
        return db
    }

    /// Refuses a pooler that does not keep one server session per client connection.
    ///
    /// A pooler answers the startup with its own backend key, so `PQbackendPID` differs from the server's
    /// `pg_backend_pid()`; without a pooler, nothing more is checked. Behind one, a second client connection is
    /// opened while the first is idle: in session mode each client keeps its own server session, so the two
    /// backends differ; in transaction mode the idle client's server connection went back to the pool and the second
    /// client gets the same backend. The first connection's backend must also stay the same from statement to
    /// statement. Tested against a real pgbouncer in both modes.
    func checkSession(_ db: PGConnection) throws {
        guard let pid = try? db.exec("SELECT pg_backend_pid()").scalarInt64(), Int(pid) != db.backendPID else {
            return
        }
        var pids: Set<Int64> = [pid]
        for _ in 0..<2 {
            if let p = try? db.exec("SELECT pg_backend_pid()").scalarInt64() { pids.insert(p) }
        }
        var shared = false
        if let second = try? PGConnection(conninfo: conninfo),
            let other = try? second.exec("SELECT pg_backend_pid()").scalarInt64()
        {
            shared = pids.contains(other)
        }
        if pids.count > 1 || shared {
            throw PipelineError.usage(
                "\(variable) goes through a transaction-mode connection pooler (server sessions are shared between "
                    + "clients): bulk COPY, advisory locks and snapshots need a session. Use the direct connection "
                    + "or session mode (port 5432)")
        }
    }
}
