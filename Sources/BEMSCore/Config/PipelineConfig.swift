import Foundation

/// The pipeline configuration, read from `pipeline.json`.
///
/// Every key is type-checked; an unknown or mistyped key is a ``PipelineError`` (exit 64) that names the key path.
/// README.md documents each key.
package struct PipelineConfig: Sendable, Equatable {
    /// One input: a CSV file or a folder of `<year>Floor<n>.csv` files, with an optional explicit floor.
    package struct Source: Sendable, Equatable, Codable {
        package var path: String
        package var floor: Int?

        package init(path: String, floor: Int? = nil) {
            self.path = path
            self.floor = floor
        }
    }

    /// The valid and plausible ranges of one equipment type, as scaled decimals (×10^4).
    package struct Range: Sendable, Equatable {
        /// A value outside this range is rejected.
        package var valid: ClosedRange<Int64>
        /// A value inside `valid` but outside this range is kept with status `anomaly`.
        package var plausible: ClosedRange<Int64>
    }

    /// Chunking of normalized readings.
    package struct Chunking: Sendable, Equatable {
        /// Local days per chunk (a chunk never mixes floors).
        package var days: Int = 1
        /// Upper bound of readings per chunk; a bigger floor-day is split.
        package var maxRows: Int = 500_000
        /// zstd level for chunk columns.
        package var zstdLevel: Int = 3
    }

    /// Settings of the load stage.
    package struct Loading: Sendable, Equatable {
        /// The smallest piece a chunk is split into after a statement timeout: a piece that times out is halved only
        /// while both halves keep at least this many rows.
        package var minPieceRows: Int = 10_000
        /// Parallel workers (`max_parallel_maintenance_workers`) of a first load's unique-key build, and
        /// (`max_parallel_workers_per_gather`) of the verify scan that follows it on the same session; the second
        /// session's primary key and floor BRIN build with none. The default 1 fits a 2-core server: with the server's
        /// default 2 the key's sort ran 3 processes on 2 cores and took 91 s where 1 worker took 75 s (RESULTS.md).
        package var indexBuildWorkers: Int = 1
    }

    /// Settings per environment (dev, staging, prod). Later stages add keys here.
    package struct Environment: Sendable, Equatable {
        /// Name of the environment variable holding the libpq connection string or URI.
        package var databaseURLEnv: String
        /// Fraction of days to keep (1.0 = everything).
        package var sample: Double
        /// Retries of connections and chunks after transient database errors.
        package var retry = RetryPolicy()
        /// `statement_timeout` in milliseconds for the sessions that load chunks (0 = no limit); `nil` keeps the
        /// server's (or the role's) setting.
        package var statementTimeoutMilliseconds: Int?
        /// `lock_timeout` and `idle_in_transaction_session_timeout` of every session, in milliseconds; `nil` keeps
        /// the server's setting.
        package var lockTimeoutMilliseconds: Int?
        package var idleInTransactionTimeoutMilliseconds: Int?
        /// Load workers (connections loading chunks at once); `nil`: one per core, at most 4.
        package var workers: Int?
        /// The most connections a stage opens at once (its own session included).
        package var maxConnections = 100
        /// Rows/s and bytes/s of load's COPY, and connection attempts/s; `nil` is unlimited.
        package var rateLimit = RateLimit()
        /// The database's storage limit in MB (`storageLimitMB`; `nil`: none); load's pre-flight checks against it.
        package var storageLimitMB: Int? = nil
        /// Alert thresholds (`alerts`; see ``AlertThresholds``).
        package var alerts = AlertThresholds()
        /// The variable holding the admin API's service-role token (`serviceTokenEnv`; `nil`: `BEMS_<ENV>_SERVICE_TOKEN`,
        /// see ``serviceTokenVariable(env:)``).
        package var serviceTokenEnv: String? = nil
    }

    /// `environments.<env>.rateLimit`.
    package struct RateLimit: Sendable, Equatable {
        package var rowsPerSecond: Double?
        package var bytesPerSecond: Double?
        package var connectionsPerSecond: Double?
    }

    package var sources: [Source] = [Source(path: "data/sample")]
    package var workDir: String = "work"
    package var timeZone: String = "Asia/Bangkok"
    package var chunk = Chunking()
    package var load = Loading()
    package var ranges: [EquipmentType: Range] = PipelineConfig.defaultRanges
    /// Largest accepted share of rejected records per file before validate exits 65.
    package var rejectThreshold: Double = 0.001
    /// Lines longer than this many bytes are rejected without being buffered.
    package var maxLineBytes: Int = 1 << 20
    package var environments: [String: Environment] = PipelineConfig.defaultEnvironments
    /// Run reports, metrics, Sentry and alert delivery (`monitoring`; see ``Monitoring``).
    package var monitoring = Monitoring()
    /// The admin HTTP API (`serve`; see ``Serve``).
    package var serve = Serve()

    package init() {}

    /// The default ranges: power can't be negative; RH is a percentage; spikes like 4762.43 kW are anomalies.
    package static let defaultRanges: [EquipmentType: Range] = {
        func r(_ v: ClosedRange<Int64>, _ p: ClosedRange<Int64>) -> Range {
            Range(
                valid: v.lowerBound * 10_000...v.upperBound * 10_000,
                plausible: p.lowerBound * 10_000...p.upperBound * 10_000)
        }
        // Power has no upper limit of its own: anything DECIMAL(10,4) holds is valid, spikes become anomalies.
        let power = Range(valid: 0...ScaledDecimal.maxMagnitude, plausible: 0...0)
        func kW(_ plausible: Int64) -> Range { Range(valid: power.valid, plausible: 0...plausible * 10_000) }
        return [
            .ac: kW(100),
            .light: kW(60),
            .plug: kW(40),
            .temperature: r(-50...100, 15...40),
            .humidity: r(0...100, 10...100),
            .illuminance: r(0...200_000, 0...2_000),
        ]
    }()

    package static let defaultEnvironments: [String: Environment] = [
        "dev": Environment(
            databaseURLEnv: "BEMS_DEV_DATABASE_URL", sample: 0.1, serviceTokenEnv: "BEMS_DEV_SERVICE_TOKEN"),
        "staging": Environment(
            databaseURLEnv: "BEMS_STAGING_DATABASE_URL", sample: 0.1, storageLimitMB: 500,
            serviceTokenEnv: "BEMS_STAGING_SERVICE_TOKEN"),
        "prod": Environment(
            databaseURLEnv: "BEMS_PROD_DATABASE_URL", sample: 1.0, storageLimitMB: 500,
            serviceTokenEnv: "BEMS_PROD_SERVICE_TOKEN"),
    ]
}
