import Foundation
import Logging

/// `bems rollback load [RUN]`: reverts one load run's committed chunks in a single transaction.
///
/// Works piece by piece (a `loaded_chunks` row is a whole chunk or, after a statement timeout, a piece of one), so
/// a run that finished a chunk an earlier, interrupted run had partly loaded takes back only its own pieces.
///
/// - Deletes the rows the run inserted (ledger `inserted_ids`, unnested into id ranges so the primary key is used).
/// - Restores every row it updated to the ledger's previous value and status (`replaced_readings`).
/// - Applies the inverse deltas to `sensor_day_stats`, and records the sensor-days it changed in `dirty_sensor_days`
///   (the next refresh recomputes them; one left without readings is deleted from `daily_aggregates`).
/// - Marks its chunks and the run `rolled_back` (by a new `runs` row of stage `load-rollback`).
///
/// Refused when a later committed run touched a key this run inserted or updated: roll that run back first. When the
/// work directory's current load run is the one rolled back, its `CURRENT` pointer goes back as well.
package enum LoadRollback {
    package struct Options: Sendable {
        package var config: PipelineConfig
        package var env: String
        package var database: DatabaseTarget
        package var ledgerSchema = Schema.defaultLedgerSchema
        /// The ledger run id, or the load's work-dir run id; default the latest load run with committed chunks.
        package var run: String?

        package init(config: PipelineConfig, env: String, database: DatabaseTarget) {
            self.config = config
            self.env = env
            self.database = database
        }
    }

    package struct Result: Sendable, Equatable {
        package var ledgerRunID: Int64
        /// Chunks the run committed (some possibly in pieces).
        package var chunks: Int
        /// `loaded_chunks` rows rolled back: ``chunks`` unless a chunk was split.
        package var pieces: Int
        package var deleted: Int
        package var restored: Int
    }

    /// Rolls back a load run.
    ///
    /// - Throws: ``PipelineError`` 66 (no such run or nothing committed), 65 (a later run touched the same keys),
    ///   73 (a load is running).
    package static func run(_ options: Options, logger: Logger) throws -> Result {
        let db = try options.database.connect(logger: logger)
        let ledger = LoadLedger(schema: options.ledgerSchema, timeZone: options.config.timeZone)
        try DatabaseSetup.ensure(on: db, timeZone: options.config.timeZone, ledgerSchema: options.ledgerSchema)
        try ledger.lock(on: db)
        defer { ledger.unlock(on: db) }
        let q = try ledger.q(db)
        let tz = try db.quoteLiteral(ledger.timeZone)

        let runID: Int64
        let committedRuns = "SELECT DISTINCT run_id FROM \(q).loaded_chunks WHERE status = 'committed'"
        if let given = options.run {
            let r = try db.exec(
                """
                SELECT id FROM \(q).runs
                WHERE stage = 'load' AND (id::text = $1 OR details->>'workRun' = $1)
                """,
                parameters: [given])
            guard let id = try r.rows.isEmpty ? nil : r.int64(row: 0, col: 0) else {
                throw PipelineError.noInput("load run \(given) not found in the ledger")
            }
            runID = id
        } else {
            guard let id = try db.exec("SELECT max(run_id) FROM (\(committedRuns)) c").scalarInt64() else {
                throw PipelineError.noInput("no load run has committed chunks: nothing to roll back")
            }
            runID = id
        }
        let p = [String(runID)]
        let counted = try db.exec(
            "SELECT count(DISTINCT chunk_name), count(*) FROM \(q).loaded_chunks WHERE run_id = $1 AND status = 'committed'",
            parameters: p)
        let chunks = try counted.int(row: 0, col: 0) ?? 0
        let pieces = try counted.int(row: 0, col: 1) ?? 0
        guard chunks > 0 else {
            throw PipelineError.noInput("load run \(runID) has no committed chunks (already rolled back?)")
        }

        // Keys of this run touched by a later committed run?
        let conflicts =
            try db.exec(
                """
                WITH mine AS (
                    SELECT rr.sensor_id, rr."timestamp" FROM \(q).replaced_readings rr
                    JOIN \(q).loaded_chunks c
                      ON c.run_id = rr.run_id AND c.chunk_name = rr.chunk_name AND c.piece_start = rr.piece_start
                    WHERE c.run_id = $1 AND c.status = 'committed'
                    UNION
                    SELECT s.sensor_id, s."timestamp"
                    FROM \(q).loaded_chunks c, unnest(c.inserted_ids) AS ir
                    JOIN \(Schema.readingsTable) s ON s.id >= lower(ir) AND s.id < upper(ir)
                    WHERE c.run_id = $1 AND c.status = 'committed'
                )
                SELECT count(DISTINCT rr.run_id) FROM \(q).replaced_readings rr
                JOIN \(q).loaded_chunks c
                  ON c.run_id = rr.run_id AND c.chunk_name = rr.chunk_name AND c.piece_start = rr.piece_start
                JOIN mine m ON m.sensor_id = rr.sensor_id AND m."timestamp" = rr."timestamp"
                WHERE c.run_id > $1 AND c.status = 'committed'
                """,
                parameters: p
            ).scalarInt64() ?? 0
        if conflicts > 0 {
            throw PipelineError.data(
                "load run \(runID) cannot be rolled back: \(conflicts) later committed load run(s) updated readings it "
                    + "wrote; roll those back first (newest first)")
        }

        let outcome = try db.transaction { () throws -> Result in
            let rollbackRun = try ledger.startRun(
                stage: "load-rollback", env: options.env, details: ["target": String(runID)], on: db)
            // Inverse stats for inserted rows, then delete them.
            let deleted =
                try db.exec(
                    """
                    WITH del AS (
                        DELETE FROM \(Schema.readingsTable) s
                        USING \(q).loaded_chunks c, unnest(c.inserted_ids) AS ir
                        WHERE c.run_id = $1 AND c.status = 'committed' AND s.id >= lower(ir) AND s.id < upper(ir)
                        RETURNING s.sensor_id, s."timestamp", s.reading_value
                    ), d AS (
                        SELECT sensor_id, ("timestamp" AT TIME ZONE \(tz))::date AS day, count(*) AS c,
                               coalesce(sum(reading_value), 0) AS v
                        FROM del GROUP BY 1, 2
                    ), upd AS (
                        UPDATE \(q).sensor_day_stats s SET reading_count = s.reading_count - d.c,
                               value_sum = s.value_sum - d.v
                        FROM d WHERE s.sensor_id = d.sensor_id AND s.day = d.day
                        RETURNING 1
                    ), dirty AS (
                        INSERT INTO \(q).\(Schema.dirtyTable) AS t (sensor_id, day)
                        SELECT sensor_id, day FROM d ORDER BY 1, 2
                        ON CONFLICT (sensor_id, day) DO UPDATE SET day = excluded.day WHERE false
                    )
                    SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM upd)
                    """,
                    parameters: p
                ).int(row: 0, col: 0) ?? 0
            // Restore updated rows (the stats delta is previous − current).
            try db.exec(
                """
                CREATE TEMP TABLE bems_rollback_restore ON COMMIT DROP AS
                SELECT s.id, s.sensor_id, s."timestamp", s.reading_value AS current_value,
                       rr.previous_value, rr.previous_status
                FROM \(q).replaced_readings rr
                JOIN \(q).loaded_chunks c
                  ON c.run_id = rr.run_id AND c.chunk_name = rr.chunk_name AND c.piece_start = rr.piece_start
                JOIN \(Schema.readingsTable) s ON s.sensor_id = rr.sensor_id AND s."timestamp" = rr."timestamp"
                WHERE c.run_id = $1 AND c.status = 'committed'
                """,
                parameters: p)
            let restored =
                try db.exec(
                    """
                    UPDATE \(Schema.readingsTable) s SET reading_value = t.previous_value, status = t.previous_status
                    FROM bems_rollback_restore t WHERE s.id = t.id
                    """
                ).affectedRows ?? 0
            try db.exec(
                """
                UPDATE \(q).sensor_day_stats s
                SET value_sum = s.value_sum + d.v
                FROM (
                    SELECT sensor_id, ("timestamp" AT TIME ZONE \(tz))::date AS day,
                           sum(coalesce(previous_value, 0) - coalesce(current_value, 0)) AS v
                    FROM bems_rollback_restore GROUP BY 1, 2
                ) d
                WHERE s.sensor_id = d.sensor_id AND s.day = d.day
                """)
            try db.exec(
                """
                INSERT INTO \(q).\(Schema.dirtyTable) AS t (sensor_id, day)
                SELECT DISTINCT sensor_id, ("timestamp" AT TIME ZONE \(tz))::date FROM bems_rollback_restore ORDER BY 1, 2
                ON CONFLICT (sensor_id, day) DO UPDATE SET day = excluded.day WHERE false
                """)
            try db.exec(
                """
                UPDATE \(q).loaded_chunks SET status = 'rolled_back', rolled_back_at = now(), rolled_back_by = $2
                WHERE run_id = $1 AND status = 'committed'
                """,
                parameters: [String(runID), String(rollbackRun)])
            try db.exec(
                "UPDATE \(q).runs SET status = 'rolled_back', finished_at = coalesce(finished_at, now()) WHERE id = $1",
                parameters: p)
            try ledger.finishRun(rollbackRun, status: "succeeded", on: db)
            return Result(ledgerRunID: runID, chunks: chunks, pieces: pieces, deleted: deleted, restored: restored)
        }
        // The work directory's current load run, when it is this one, goes back too (so verify and status agree).
        let work = WorkDir(root: options.config.workDir)
        if let current = try? work.currentManifest(.load), current.totals["ledgerRunID"] == Int(runID) {
            let lock = try WorkDirLock(directory: work.root)
            defer { withExtendedLifetime(lock) {} }
            _ = try work.rollback(.load)
        }
        logger.notice(
            "load run rolled back",
            metadata: [
                "ledger.run": "\(runID)", "chunks": "\(outcome.chunks)", "pieces": "\(outcome.pieces)",
                "rows.deleted": "\(outcome.deleted)",
                "rows.restored": "\(outcome.restored)",
            ])
        return outcome
    }
}
