import Foundation
import Logging

/// The refresh stage: brings `daily_aggregates` up to date and refreshes planner statistics after loads.
///
/// Steps: one call of ``Schema/refreshFunction`` (incremental: the sensor-days loads and rollbacks recorded in
/// `dirty_sensor_days` are deleted and computed again from `sensor_readings`; full with ``Options/force``, on the
/// first refresh after setup, or when most sensor-days changed; see
/// ``Schema/createFunctionsSQL(ledger:home:timeZoneLiteral:)``), then `ANALYZE sensor_readings` and `ANALYZE
/// daily_aggregates`. Each step is timed; the report says which mode ran and how many sensor-days it took.
///
/// ## Make-style skipping
///
/// Every refresh is recorded in the ledger (`<ledger>.runs`, stage `refresh`) with, in `details.ledgerSignature`,
/// the state of `<ledger>.loaded_chunks` read just *before* the refresh: the number of chunk rows, the number rolled
/// back, and the latest `loaded_at` and `rolled_back_at`. A later refresh is skipped when the signature is unchanged,
/// that is, when no load committed and no rollback happened since. Reading the signature before the refresh is
/// conservative: a load committing while the refresh runs changes the signature, so the next refresh runs again.
/// The skip also needs the work dir's current refresh run to be that last refresh: a refresh killed between its
/// ledger update and its manifest runs again instead of leaving the work dir without a record.
/// It is not skipped while `dirty_sensor_days` holds pairs, or while `daily_aggregates` is empty and readings exist.
/// Changes made outside the pipeline (manual SQL) are not in the ledger; use ``Options/force`` (a full recompute).
package enum RefreshStage {
    /// What a refresh invocation was asked to do.
    package struct Options: Sendable {
        /// The pipeline configuration (work dir, time zone, environments).
        package var config: PipelineConfig
        /// The environment (dev, staging, prod).
        package var env: String
        /// Recompute the whole table, even when no load changed data since the last refresh.
        package var force = false
        /// The ledger schema (tests use their own).
        package var ledgerSchema = Schema.defaultLedgerSchema
        /// The process environment, where ``DatabaseTarget`` finds the connection string.
        package var environment: [String: String] = ProcessInfo.processInfo.environment
        /// The database, already resolved (the commands resolve it with their options); `nil` resolves it from
        /// ``environment``.
        package var database: DatabaseTarget?

        /// Creates options.
        /// Live progress and chunk timings (``StageProgress``); silent unless the command gives one.
        package var progress = StageProgress.silent

        package init(config: PipelineConfig, env: String) {
            self.config = config
            self.env = env
        }
    }

    /// The outcome.
    package struct Result: Sendable {
        /// The work-dir manifest of this refresh, or of the last one when skipped (`nil` if none exists).
        package var manifest: StageManifest?
        /// The run's `report.json` (for a skip, the reason).
        package var report: RefreshReport
        /// True when no load changed data since the last refresh and nothing ran.
        package var upToDate: Bool
    }

    /// Runs the stage.
    ///
    /// - Throws: ``PipelineError``: 64/69 for the database target, 66 when the schema is not set up, 69 when a
    ///   statement fails, 73 for a locked work directory.
    package static func run(_ options: Options, logger: Logger) async throws -> Result {
        let config = options.config
        let work = WorkDir(root: config.workDir)
        let lock = try WorkDirLock(directory: work.root)
        defer { withExtendedLifetime(lock) {} }

        let target = try options.database
            ?? DatabaseTarget.resolve(config: config, env: options.env, environment: options.environment, logger: logger)
        let db = try target.connect(logger: logger)
        let schema = Schema(timeZone: config.timeZone, ledgerSchema: options.ledgerSchema)
        do {
            try schema.verify(on: db)
        } catch let error as SchemaError {
            throw PipelineError.noInput("the \(options.env) database is not set up for bems: \(error)")
        } catch {
            throw failure(error)
        }

        let ledger: String
        let signature: String
        let pending: Bool
        let last: (id: String, signature: String?, finishedAt: String?)?
        do {
            ledger = try db.quoteIdentifier(options.ledgerSchema)
            signature = try ledgerSignature(ledger: ledger, on: db)
            pending =
                try db.exec(
                    """
                    SELECT EXISTS (SELECT 1 FROM \(ledger).\(Schema.dirtyTable))
                        OR (NOT EXISTS (SELECT 1 FROM \(Schema.aggregatesTable))
                            AND EXISTS (SELECT 1 FROM \(Schema.readingsTable)))
                    """
                ).scalar() == "t"
            let row = try db.exec(
                """
                SELECT id::text, details->>'ledgerSignature', finished_at::text FROM \(ledger).runs
                WHERE stage = 'refresh' AND status = 'succeeded'
                ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1
                """
            ).rows.first
            last = row.map { ($0[0] ?? "", $0[1], $0[2]) }
        } catch {
            throw failure(error)
        }

        // Skipped only when the work dir records that same refresh: a refresh killed after the ledger said
        // `succeeded` but before its manifest was published (or done from another work dir) runs again, so the
        // work dir's current refresh run always names the ledger's last refresh.
        let recorded = try? work.currentManifest(.refresh)?.totals["ledgerRunID"]
        if !options.force, !pending, let last, last.signature == signature, let recorded,
            String(recorded) == last.id
        {
            logger.info("refresh is up to date", metadata: ["ledger.run": "\(last.id)"])
            var report = RefreshReport(runID: work.currentRunID(.refresh) ?? "", env: options.env)
            report.ledgerRunID = Int(last.id) ?? 0
            report.ledgerSignature = signature
            report.skippedReason = "no load or rollback since the refresh of \(last.finishedAt ?? "?")"
            return Result(manifest: try work.currentManifest(.refresh), report: report, upToDate: true)
        }

        let started = Date()
        let runID = try work.createRun(.refresh)
        let runDir = work.runDirectory(.refresh, runID)
        var report = RefreshReport(runID: runID, env: options.env)
        report.ledgerSignature = signature
        let ledgerRunID: String
        do {
            ledgerRunID =
                try db.exec(
                    "INSERT INTO \(ledger).runs (stage, env, status, details) VALUES ('refresh', $1, 'running', $2::jsonb)"
                        + " RETURNING id::text",
                    parameters: [options.env, detailsJSON(signature: signature, workRunID: runID)]
                ).scalar() ?? "0"
        } catch {
            throw failure(error)
        }
        report.ledgerRunID = Int(ledgerRunID) ?? 0
        logger.info(
            "refresh started",
            metadata: ["run": "\(runID)", "ledger.run": "\(ledgerRunID)", "force": "\(options.force)"])
        options.progress.begin(total: .unknown)  // one statement: the line shows the time it has taken

        do {
            var t = Date()
            let refreshed = try schema.refreshDailyAggregates(on: db, full: options.force)
            report.refreshSeconds = Date().timeIntervalSince(t)
            report.mode = refreshed.mode
            report.sensorDays = refreshed.sensorDays
            report.rowsDeleted = refreshed.rowsDeleted
            report.rowsInserted = refreshed.rowsInserted
            t = Date()
            try schema.analyze(on: db)
            report.analyzeSeconds = Date().timeIntervalSince(t)
            report.aggregateRows =
                Int(try db.exec("SELECT count(*) FROM \(Schema.aggregatesTable)").scalar() ?? "0") ?? 0
            try db.exec(
                """
                UPDATE \(ledger).runs SET status = 'succeeded', finished_at = clock_timestamp(),
                    details = details || jsonb_build_object('refreshSeconds', $2::float8, 'analyzeSeconds', $3::float8,
                                                            'aggregateRows', $4::bigint, 'mode', $5::text,
                                                            'sensorDays', $6::bigint)
                WHERE id = $1::bigint
                """,
                parameters: [
                    ledgerRunID, String(report.refreshSeconds), String(report.analyzeSeconds),
                    String(report.aggregateRows), report.mode, String(report.sensorDays),
                ])
        } catch {
            _ = try? db.exec(
                "UPDATE \(ledger).runs SET status = 'failed', finished_at = clock_timestamp() WHERE id = $1::bigint",
                parameters: [ledgerRunID])
            throw failure(error)
        }
        report.seconds = Date().timeIntervalSince(started)
        try AtomicFile.writeJSON(report, to: runDir + "/report.json")
        let manifest = StageManifest(
            stage: .refresh, runID: runID, previousRunID: work.currentRunID(.refresh),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: Fingerprint.make(.refresh, [options.env, signature]),
            upstreamRunID: work.currentRunID(.load), inputs: [], chunks: [], passed: true,
            totals: [
                "aggregateRows": report.aggregateRows, "refreshMilliseconds": Int(report.refreshSeconds * 1000),
                "analyzeMilliseconds": Int(report.analyzeSeconds * 1000), "ledgerRunID": report.ledgerRunID,
                "full": report.mode == "full" ? 1 : 0, "sensorDays": report.sensorDays,
            ],
            seconds: report.seconds)
        try work.publish(manifest)
        logger.notice(
            "refresh finished",
            metadata: [
                "run": "\(runID)", "rows.aggregates": "\(report.aggregateRows)",
                "refresh.seconds": "\(String(format: "%.3f", report.refreshSeconds))",
                "analyze.seconds": "\(String(format: "%.3f", report.analyzeSeconds))",
                "mode": "\(report.mode)", "sensor.days": "\(report.sensorDays)",
            ])
        return Result(manifest: manifest, report: report, upToDate: false)
    }

    /// The state of the ledger's loaded chunks: row count, rolled-back count, latest `loaded_at` and
    /// `rolled_back_at` (UTC, microseconds). Any load or rollback changes it.
    static func ledgerSignature(ledger: String, on db: PGConnection) throws -> String {
        let row = try db.exec(
            """
            SELECT count(*)::text, count(rolled_back_at)::text,
                   coalesce(to_char(max(loaded_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '-'),
                   coalesce(to_char(max(rolled_back_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '-')
            FROM \(ledger).loaded_chunks
            """
        ).rows[0]
        return row.map { $0 ?? "-" }.joined(separator: "|")
    }

    static func detailsJSON(signature: String, workRunID: String) -> String {
        "{\"ledgerSignature\":\(JSONText.quoted(signature)),\"workRunID\":\(JSONText.quoted(workRunID)),"
            + "\"bemsVersion\":\(JSONText.quoted(BEMS.version))}"
    }

    static func failure(_ error: any Error) -> PipelineError {
        if let error = error as? PipelineError { return error }
        return PipelineError(.unavailable, "refresh failed: \(error)")
    }
}

/// The `report.json` of a refresh run.
package struct RefreshReport: Codable, Equatable, Sendable {
    /// The work-dir refresh run.
    package var runID: String
    /// The environment (dev, staging, prod).
    package var env: String
    /// The `<ledger>.runs` id of the refresh.
    package var ledgerRunID = 0
    /// The ledger state the refresh covered (see ``RefreshStage``).
    package var ledgerSignature = ""
    /// `incremental` (the recorded sensor-days) or `full` (the whole table); see ``Schema/AggregatesRefresh``.
    package var mode = ""
    /// The sensor-days taken from `dirty_sensor_days`.
    package var sensorDays = 0
    /// Rows of `daily_aggregates` deleted and inserted by the refresh.
    package var rowsDeleted = 0
    package var rowsInserted = 0
    /// Seconds the refresh function took.
    package var refreshSeconds: Double = 0
    /// Seconds both `ANALYZE`s took.
    package var analyzeSeconds: Double = 0
    /// Rows of `daily_aggregates` after the refresh.
    package var aggregateRows = 0
    /// Seconds of the whole run.
    package var seconds: Double = 0
    /// Set when the refresh was skipped.
    package var skippedReason: String?

    /// Creates an empty report.
    package init(runID: String, env: String) {
        self.runID = runID
        self.env = env
    }
}
