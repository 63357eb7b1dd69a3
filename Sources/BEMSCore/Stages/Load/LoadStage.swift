import Foundation
import Logging

/// The load stage: writes the current dedupe run's chunks into `sensor_readings`, exactly once, then verifies.
///
/// Safety envelope:
/// - Every chunk's SHA-256 is checked against the dedupe manifest before anything is loaded; a mismatch names the
///   chunk and stops the run (exit 74).
/// - Each chunk is one transaction with its ledger rows (see ``ChunkLoader``). A chunk whose (name, SHA-256) is
///   already `committed` in the ledger, by any run, is skipped, so a rerun after a crash (even `kill -9`) converges.
/// - A chunk whose COPY or update hits the statement timeout is loaded in halves, each its own transaction and
///   ledger row, recursively down to `load.minPieceRows` (``ChunkPieces``); a rerun loads only the rows no committed
///   piece covers.
/// - A session advisory lock (``LoadLedger/lock(on:)``) keeps two loads apart.
/// - After the last chunk, ``VerifyStage`` compares the table with the ledger; a mismatch makes the run exit 65.
package enum LoadStage {
    /// What a load invocation was asked to do.
    package struct Options: Sendable {
        package var config: PipelineConfig
        package var env: String
        package var database: DatabaseTarget
        /// The ledger schema (`bems`; tests use their own).
        package var ledgerSchema = Schema.defaultLedgerSchema
        /// Skip the automatic verify at the end.
        package var skipVerify = false
        /// When `sensor_readings` is empty, drop its secondary indexes (BRIN, floor) and suspend its unique and
        /// primary keys for the load, and rebuild them after (``Schema/setup(on:)`` recreates them on the next run if
        /// this one is killed).
        /// Measured on 10 M generated readings: the load took about half the time with the rebuild included.
        package var dropIndexesOnFirstLoad = true
        /// Chunks loaded at once, each worker on its own connection (default: one per core, at most 4). Chunks are
        /// disjoint (one floor-day each), so no two workers ever write the same keys or the same ledger rows.
        package var workers = min(4, max(1, ProcessInfoCores.count))

        /// Live progress and chunk timings (``StageProgress``); silent unless the command gives one.
        package var progress = StageProgress.silent

        package init(config: PipelineConfig, env: String, database: DatabaseTarget) {
            self.config = config
            self.env = env
            self.database = database
        }
    }

    /// The outcome.
    package struct Result: Sendable {
        package var manifest: StageManifest?
        package var upToDate: Bool
        package var ledgerRunID: Int64?
        package var inserted: Int
        package var updated: Int
        package var chunksLoaded: Int
        package var chunksSkipped: Int
        package var maxChunkSeconds: Double
        /// Pieces committed by this run (`loaded_chunks` rows); equal to ``chunksLoaded`` when nothing was split.
        package var pieces: Int
        /// Pieces split in two after a statement timeout.
        package var splits: Int
        package var verify: VerifyReport?
        package var exitStatus: ExitStatus
        /// Workers that loaded (fewer than asked when the connection limit had no room).
        package var workers = 0
        /// Seconds the rate limits made workers wait.
        package var throttledSeconds = 0.0
    }

    /// Runs the stage.
    ///
    /// - Throws: ``PipelineError`` 66 (no dedupe run), 74 (chunk checksum or read failure), 65 (database changed since
    ///   dedupe), 69 (database unavailable, or a piece at `load.minPieceRows` still hits the statement timeout), 73
    ///   (locked); ``PostgresError`` for other database failures.
    package static func run(_ options: Options, logger: Logger) async throws -> Result {
        do {
            return try runLoading(options, logger: logger)
        } catch let error as PostgresError where error.isTransient {
            // The stage's own connection (lock, index rebuild, ledger run, verify) is not retried: losing it loses
            // the advisory lock. Committed chunks stay committed, so a rerun finishes the load exactly.
            throw PipelineError(
                .unavailable,
                "lost the \(options.env) database during the load (\(error)); committed chunks are kept, rerun "
                    + "bems-load to finish")
        }
    }

    static func runLoading(_ options: Options, logger: Logger) throws -> Result {
        let work = WorkDir(root: options.config.workDir)
        let lock = try WorkDirLock(directory: work.root)
        defer { withExtendedLifetime(lock) {} }
        guard let dedupe = try work.currentManifest(.dedupe) else {
            throw PipelineError.noInput("dedupe has no current run: run bems-dedupe first")
        }
        let dedupeDir = work.runDirectory(.dedupe, dedupe.runID)
        let started = Date()

        // Checksums first: nothing is loaded unless every chunk is intact.
        for chunk in dedupe.chunks {
            let path = dedupeDir + "/" + chunk.file
            guard FileManager.default.fileExists(atPath: path) else {
                try? work.markStale(.dedupe, dedupe.runID, reason: "chunk \(chunk.file) is missing")
                throw PipelineError.io(
                    "chunk \(chunk.file) of dedupe run \(dedupe.runID) is missing (\(path)); nothing was loaded: rerun "
                        + "bems-dedupe")
            }
            let actual = try Digest.sha256(file: path).hex
            guard actual == chunk.sha256 else {
                // Marked stale, so a plain rerun of bems-dedupe writes the run again.
                try? work.markStale(.dedupe, dedupe.runID, reason: "chunk \(chunk.file) fails its SHA-256 check")
                throw PipelineError.io(
                    "chunk \(chunk.file) of dedupe run \(dedupe.runID) fails its SHA-256 check (manifest \(chunk.sha256),"
                        + " file \(actual)); nothing was loaded: rerun bems-dedupe")
            }
        }
        logger.info("chunk checksums verified", metadata: ["chunks": "\(dedupe.chunks.count)"])

        let ledger = LoadLedger(schema: options.ledgerSchema, timeZone: options.config.timeZone)
        var database = options.database
        if database.applicationName == nil { database.applicationName = "bems-load" }
        // Connect, set up and lock as one retried step: each part is idempotent, and a session lost halfway (server
        // restarting) released whatever it held.
        let db = try database.retry.run("load setup", logger: logger) { () throws -> PGConnection in
            let db = try database.connect(logger: logger)
            try DatabaseSetup.ensure(on: db, timeZone: options.config.timeZone, ledgerSchema: options.ledgerSchema)
            try ledger.lock(on: db)
            return db
        }
        defer { ledger.unlock(on: db) }

        let committed = try ledger.committedPieces(
            names: dedupe.chunks.map(\.file), sha256s: dedupe.chunks.map(\.sha256), on: db)
        var pending = dedupe.chunks.compactMap { chunk -> PendingChunk? in
            guard let coverage = committed[LoadLedger.key(name: chunk.file, sha256: chunk.sha256)] else {
                return PendingChunk(record: chunk, gaps: [0..<chunk.rows])
            }
            let gaps = coverage.gaps(rows: chunk.rows)
            return gaps.isEmpty ? nil : PendingChunk(record: chunk, gaps: gaps)
        }
        if pending.isEmpty, let current = try work.currentManifest(.load), current.upstreamRunID == dedupe.runID {
            logger.notice("load is up to date", metadata: ["run": "\(current.runID)", "dedupe.run": "\(dedupe.runID)"])
            // A run killed (or out of disk) after its manifest but before its verify.json is verified now.
            var report: VerifyReport?
            if !options.skipVerify,
                !FileManager.default.fileExists(atPath: work.runDirectory(.load, current.runID) + "/verify.json")
            {
                report = try VerifyStage.verify(
                    loadManifest: current, work: work, ledger: ledger, db: db, logger: logger)
            }
            return Result(
                manifest: current, upToDate: true, ledgerRunID: current.totals["ledgerRunID"].map(Int64.init),
                inserted: 0, updated: 0, chunksLoaded: 0, chunksSkipped: dedupe.chunks.count, maxChunkSeconds: 0,
                pieces: 0, splits: 0, verify: report, exitStatus: report?.passed == false ? .dataError : .ok)
        }

        let runID = try work.createRun(.load)
        let ledgerRunID = try ledger.startRun(
            stage: "load", env: options.env,
            details: ["workRun": runID, "dedupeRun": dedupe.runID, "bemsVersion": BEMS.version], on: db)
        logger.info(
            "load started",
            metadata: [
                "run": "\(runID)", "ledger.run": "\(ledgerRunID)", "chunks": "\(dedupe.chunks.count)",
                "chunks.pending": "\(pending.count)",
                "chunks.partlyLoaded": "\(pending.filter { $0.gaps != [0..<$0.record.rows] }.count)",
            ])

        let schema = Schema(timeZone: options.config.timeZone, ledgerSchema: options.ledgerSchema)
        var droppedIndexes = false
        // Empty at the start, under the advisory lock: a first load (see ChunkLoader.startedEmpty).
        let startedEmpty = try db.exec("SELECT NOT EXISTS (SELECT 1 FROM \(Schema.readingsTable))").scalar() == "t"
        if options.dropIndexesOnFirstLoad, pending.count > 1, startedEmpty, try DatabaseSetup.ownsReadings(on: db) {
            // sensor_readings_timestamp_brin: an earlier bems's, which the floor BRIN replaces (Schema).
            try db.exec(
                "DROP INDEX IF EXISTS sensor_readings_timestamp_brin, sensor_readings_floor_number_timestamp_idx")
            droppedIndexes = true
            let suspended = try schema.suspendKeys(on: db, runID: ledgerRunID)
            logger.info(
                "first load: secondary indexes and keys dropped, rebuilt after the last chunk",
                metadata: [
                    "unique.key": "\(suspended.contains(.unique) ? "suspended" : "kept")",
                    "primary.key": "\(suspended.contains(.primary) ? "suspended" : "kept")",
                ])
        }
        // Ids for every row of the pending chunks in one block (one short transaction), so that no chunk calls
        // nextval per row; without ownership of the sequence each piece takes its own.
        if let first = try IDBlock.reserve(count: pending.reduce(0) { $0 + $1.record.rows }, on: db) {
            var next = first
            for i in pending.indices {
                pending[i].idBase = next
                next += Int64(pending[i].record.rows)
            }
        }
        // Connections: never more than the environment's cap (this session included), never above 80% of the
        // server's max_connections counting everyone's; at the limit, wait for room.
        let settings = options.config.environments[options.env] ?? PipelineConfig.Environment(databaseURLEnv: "", sample: 1)
        let (workers, room) = try ConnectionBudget(cap: max(1, settings.maxConnections - 1)).workers(
            wanted: min(options.workers, max(1, pending.count)), on: db, logger: logger)
        let limits = LoadRateLimits(
            rows: settings.rateLimit.rowsPerSecond.map { RateLimiter(rate: $0, burst: max(1, $0 / 10)) },
            bytes: settings.rateLimit.bytesPerSecond.map { RateLimiter(rate: $0, burst: max(1, $0 / 10)) })
        logger.info(
            "load workers",
            metadata: [
                "workers": "\(workers)", "max_connections": "\(room.serverMax)", "in.use": "\(room.inUse)",
                "rows.per.second": "\(settings.rateLimit.rowsPerSecond.map { "\($0)" } ?? "unlimited")",
                "bytes.per.second": "\(settings.rateLimit.bytesPerSecond.map { "\($0)" } ?? "unlimited")",
            ])
        let progress = LoadProgress()
        // A first load's verify, when it ran beside the index builds (written once the manifest is published).
        nonisolated(unsafe) var earlyReport: VerifyReport?
        options.progress.begin(total: .rows(pending.reduce(0) { $0 + $1.gaps.reduce(0) { $0 + $1.count } }))
        options.progress.watchThrottling { limits.throttledSeconds }
        do {
            try loadChunks(
                pending, workers: workers,
                context: LoadContext(
                    directory: dedupeDir, database: database, ledger: ledger, ledgerRunID: ledgerRunID,
                    lockSession: LockSession(db: db), progress: progress,
                    minPieceRows: options.config.load.minPieceRows, limits: limits,
                    stageProgress: options.progress, startedEmpty: startedEmpty, logger: logger))
            let inserted = progress.inserted
            if droppedIndexes {
                let t0 = Date()
                options.progress.enterPhase("building indexes")
                // Verify needs only the unique key, so it runs on the key's session while the second one still
                // builds the primary key and the floor BRIN (RESULTS.md).
                let verifyBeside: ((PGConnection) throws -> Void)? =
                    options.skipVerify
                    ? nil
                    : { [progress = options.progress, work] session in
                        progress.enterPhase("verifying, building indexes")
                        earlyReport = try VerifyStage.check(
                            loadRunID: runID, dedupeRunID: dedupe.runID, work: work, ledger: ledger, db: session)
                    }
                try buildIndexes(
                    schema: schema, db: db, database: database, workers: options.config.load.indexBuildWorkers,
                    logger: logger, afterKey: verifyBeside)
                try schema.setup(on: db)
                logger.info(
                    "indexes and keys rebuilt",
                    metadata: [
                        "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))",
                        "verified.beside": "\(earlyReport != nil)",
                    ])
            }
            // Fresh planner statistics after a big load, so verify (and the application) get index plans.
            if droppedIndexes || inserted >= 1_000_000 {
                let t0 = Date()
                options.progress.enterPhase("analyzing")
                try schema.analyze(on: db)
                logger.info(
                    "table analyzed", metadata: ["seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))"])
            }
            try ledger.finishRun(ledgerRunID, status: "succeeded", on: db)
        } catch {
            if droppedIndexes { try? schema.setup(on: db) }
            try? ledger.finishRun(ledgerRunID, status: "failed", on: db)
            // The database changed since dedupe's snapshot: a plain rerun of bems-dedupe must classify again.
            if let refused = error as? PipelineError, refused.exitStatus == .dataError {
                try? work.markStale(.dedupe, dedupe.runID, reason: refused.message)
            }
            throw error
        }

        let inserted = progress.inserted
        let updated = progress.updated
        let maxSeconds = progress.maxSeconds
        let pieces = progress.pieces
        let splits = progress.splits
        let manifest = StageManifest(
            stage: .load, runID: runID, previousRunID: work.currentRunID(.load),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: Fingerprint.make(.load, [dedupe.fingerprint, dedupe.runID]), upstreamRunID: dedupe.runID,
            inputs: [], chunks: [], passed: true,
            totals: [
                "ledgerRunID": Int(ledgerRunID), "inserted": inserted, "updated": updated,
                "chunksLoaded": pending.count, "chunksSkipped": dedupe.chunks.count - pending.count,
                "maxChunkMilliseconds": Int((maxSeconds * 1000).rounded()), "pieces": pieces, "splits": splits,
                "workers": workers, "throttledMilliseconds": Int((limits.throttledSeconds * 1000).rounded()),
            ],
            seconds: Date().timeIntervalSince(started))
        try work.publish(manifest)

        var report: VerifyReport?
        var status = ExitStatus.ok
        if !options.skipVerify {
            let r: VerifyReport
            if let early = earlyReport {
                r = early
                try VerifyStage.record(r, work: work, logger: logger)
            } else {
                options.progress.enterPhase("verifying")
                r = try VerifyStage.verify(loadManifest: manifest, work: work, ledger: ledger, db: db, logger: logger)
            }
            report = r
            if !r.passed { status = .dataError }
        }
        logger.notice(
            "load finished",
            metadata: [
                "run": "\(runID)", "ledger.run": "\(ledgerRunID)", "rows.inserted": "\(inserted)",
                "rows.updated": "\(updated)", "chunks.loaded": "\(pending.count)",
                "chunks.skipped": "\(dedupe.chunks.count - pending.count)", "pieces": "\(pieces)",
                "splits": "\(splits)", "seconds": "\(String(format: "%.2f", manifest.seconds))",
                "workers": "\(workers)", "throttled.seconds": "\(String(format: "%.2f", limits.throttledSeconds))",
                "verify": "\(report.map { $0.passed ? "passed" : "FAILED" } ?? "skipped")",
            ])
        return Result(
            manifest: manifest, upToDate: false, ledgerRunID: ledgerRunID, inserted: inserted, updated: updated,
            chunksLoaded: pending.count, chunksSkipped: dedupe.chunks.count - pending.count,
            maxChunkSeconds: maxSeconds, pieces: pieces, splits: splits, verify: report, exitStatus: status,
            workers: workers, throttledSeconds: limits.throttledSeconds)
    }

    /// Builds a first load's indexes on two sessions at once: the unique key on this one, then `afterKey` (verify)
    /// on it, while a second session builds the primary key (when suspended) and the floor BRIN.
    /// ``Schema/setup(on:)`` afterwards attaches the keys as the constraints and finds the rest in place (it also
    /// builds whatever is still missing, one after the other).
    ///
    /// The key's build and `afterKey`'s queries use `workers` parallel workers, the second session none: the
    /// whole phase is CPU-bound, and on a 2-core server the server's default of 2 workers per build (3 processes
    /// for the key, 3 more beside it) spent more in contention than it won (RESULTS.md, "The phase after the
    /// chunks").
    ///
    /// - Throws: ``PipelineError`` 65 when the key finds duplicates (written outside bems while it was suspended);
    ///   the first error of either session otherwise. `afterKey` does not run when the key's build failed.
    static func buildIndexes(
        schema: Schema, db: PGConnection, database: DatabaseTarget, workers: Int = 1, logger: Logger,
        afterKey: ((PGConnection) throws -> Void)? = nil
    ) throws {
        let keys = try schema.suspendedKeyIndexSQL(on: db)
        guard let uniqueSQL = keys[.unique] else { return }
        let second = try database.connect(logger: logger)
        final class Box: @unchecked Sendable {
            // @unchecked: each connection (and `afterKey`) is used by exactly one of the two iterations; errors
            // under `lock`.
            let connections: [PGConnection]
            let statements: [[String]]
            let afterKey: ((PGConnection) throws -> Void)?
            let lock = NSLock()
            var errors: [any Error] = []
            init(_ connections: [PGConnection], _ statements: [[String]], _ afterKey: ((PGConnection) throws -> Void)?) {
                self.connections = connections
                self.statements = statements
                self.afterKey = afterKey
            }
        }
        let box = Box(
            [db, second],
            [
                [
                    "SET max_parallel_maintenance_workers = \(workers)",
                    "SET max_parallel_workers_per_gather = \(workers)", uniqueSQL,
                ],
                ["SET max_parallel_maintenance_workers = 0"] + (keys[.primary].map { [$0] } ?? [])
                    + [Schema.createReadingsFloorIndexSQL],
            ], afterKey)
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            do {
                for sql in box.statements[i] { try box.connections[i].exec(sql) }
                if i == 0, let afterKey = box.afterKey {
                    // Under SHARE, the builds' own lock: it keeps autovacuum (SHARE UPDATE EXCLUSIVE) off the table
                    // while no build holds it, which otherwise started on the 123 M fresh rows and took verify from
                    // 16 s to 40 s in one full run (RESULTS.md). An autovacuum already running is cancelled by the
                    // server after deadlock_timeout, as for any lock it blocks.
                    let session = box.connections[0]
                    try session.transaction {
                        try session.exec("LOCK TABLE \(Schema.readingsTable) IN SHARE MODE")
                        try afterKey(session)
                    }
                }
            } catch {
                box.lock.withLock { box.errors.append(error) }
            }
        }
        _ = try? db.exec("RESET max_parallel_maintenance_workers; RESET max_parallel_workers_per_gather")
        if let error = box.errors.first {
            if let e = error as? PostgresError, e.sqlState == "23505" {
                // Duplicates: setup's rebuild says what to do (and keeps the record).
                try schema.setup(on: db)
            }
            throw error
        }
    }

    /// Loads chunks on up to `workers` connections; the first failure stops the others after their current piece
    /// (whose transaction either committed whole or rolled back whole).
    static func loadChunks(_ chunks: [PendingChunk], workers: Int, context: LoadContext) throws {
        let width = max(1, min(workers, chunks.count))
        DispatchQueue.concurrentPerform(iterations: width) { _ in
            var worker = ChunkWorker(context: context)
            do {
                while let chunk = context.progress.next(chunks) {
                    try worker.load(chunk)
                }
            } catch let error as PostgresError where error.isTransient {
                let retry = context.database.retry
                context.progress.fail(
                    PipelineError(
                        .unavailable,
                        "the database stayed unavailable beyond the retry policy (\(retry.maxAttempts) "
                            + "attempts, \(Int(retry.budget)) s): \(error); committed chunks are kept, "
                            + "rerun bems-load to finish"))
            } catch {
                context.progress.fail(error)
            }
        }
        if let error = context.progress.error { throw error }
    }
}

/// A chunk with rows to load: the row ranges no committed piece covers (`0..<rows` when nothing is committed).
struct PendingChunk: Sendable {
    var record: ChunkRecord
    var gaps: [Range<Int>]
    /// The id of the chunk's row 0 in the run's reserved block (``IDBlock``), if one was reserved.
    var idBase: Int64?
}

/// What the load workers share.
struct LoadContext: Sendable {
    var directory: String
    var database: DatabaseTarget
    var ledger: LoadLedger
    var ledgerRunID: Int64
    var lockSession: LockSession
    var progress: LoadProgress
    /// `load.minPieceRows`: the smallest half a timed-out piece is split into.
    var minPieceRows: Int
    /// Rows/s and bytes/s of COPY, shared by the workers.
    var limits: LoadRateLimits
    /// The progress line, chunk timings and bytes sent.
    var stageProgress = StageProgress.silent
    /// The table was empty when the run started (``ChunkLoader/startedEmpty``).
    var startedEmpty = false
    var logger: Logger
}

/// One load worker: its connection (opened on first use, replaced after a failure) and the pieces it loads.
struct ChunkWorker {
    let context: LoadContext
    private var loader: ChunkLoader?

    init(context: LoadContext) { self.context = context }

    /// A piece's statement hit the statement timeout: it is split, not retried as it is.
    struct PieceTimedOut: Error {
        var error: PostgresError
    }

    /// Reads, checks and loads one chunk's missing rows.
    mutating func load(_ chunk: PendingChunk) throws {
        let t0 = Date()
        let record = chunk.record
        let data: ChunkData
        do {
            let bytes = try ChunkFile.read(context.directory + "/" + record.file)
            guard Digest.sha256Hex(bytes) == record.sha256 else {
                throw PipelineError.io("chunk \(record.file) changed after its checksum was verified")
            }
            data = try ChunkReader.decode(bytes).data
        } catch let error as ChunkError {
            throw PipelineError.io("chunk \(record.file): \(error)")
        }
        guard data.count == record.rows else {
            throw PipelineError.io(
                "chunk \(record.file) holds \(data.count) readings, its dedupe manifest says \(record.rows)")
        }
        if chunk.gaps != [0..<record.rows] {
            context.logger.info(
                "chunk partly loaded before: loading the rows no committed piece covers",
                metadata: ["chunk": "\(record.file)", "rows": "\(ChunkPieces.describe(chunk.gaps))"])
        }
        var outcome = ChunkLoader.Outcome()
        for gap in chunk.gaps {
            outcome = outcome + (try loadPiece(data, chunk: record, rows: gap, idBase: chunk.idBase))
        }
        let seconds = Date().timeIntervalSince(t0)
        context.progress.record(inserted: outcome.inserted, updated: outcome.updated, seconds: seconds)
        context.stageProgress.advance(rows: chunk.gaps.reduce(0) { $0 + $1.count })  // the total counts these
        context.stageProgress.recordChunk(seconds: seconds)
        context.logger.info(
            "chunk loaded",
            metadata: [
                "chunk": "\(record.file)", "rows.inserted": "\(outcome.inserted)",
                "rows.updated": "\(outcome.updated)", "seconds": "\(String(format: "%.3f", seconds))",
                "seconds.steps":
                    "\(outcome.steps.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3f", $0.value))" }.joined(separator: " "))",
            ])
    }

    /// Loads rows `rows` of a chunk as one piece; when a statement hits the statement timeout, loads the two halves
    /// instead (each its own transaction and ledger row), recursively, while they keep `minPieceRows` rows.
    ///
    /// - Throws: ``PipelineError`` 69 when a piece at the floor still times out (pieces committed so far stay
    ///   committed, and a rerun loads only the rest).
    mutating func loadPiece(
        _ data: ChunkData, chunk: ChunkRecord, rows: Range<Int>, idBase: Int64? = nil
    ) throws -> ChunkLoader.Outcome {
        do {
            return try loadRetrying(data, chunk: chunk, rows: rows, idBase: idBase)
        } catch let timeout as PieceTimedOut {
            let timeoutSetting =
                context.database.statementTimeoutMilliseconds.map { "statement_timeout \($0) ms" }
                ?? "the server's statement_timeout"
            guard let (first, second) = ChunkPieces.halves(of: rows, minimumRows: context.minPieceRows) else {
                throw PipelineError(
                    .unavailable,
                    "chunk \(chunk.file): rows \(ChunkPieces.describe([rows])) (\(rows.count) readings) still hit "
                        + "\(timeoutSetting) (\(timeout.error)) and cannot be halved without going below "
                        + "load.minPieceRows (\(context.minPieceRows)); committed pieces are kept: raise "
                        + "environments.\(context.database.env).statementTimeout or lower load.minPieceRows, then "
                        + "rerun bems-load")
            }
            context.progress.recordSplit()
            context.logger.warning(
                "statement timeout: loading the piece in two halves",
                metadata: [
                    "chunk": "\(chunk.file)", "piece.rows": "\(rows.count)", "piece.first": "\(rows.lowerBound)",
                    "halves": "\(first.count)+\(second.count)", "timeout": "\(timeoutSetting)",
                    "pg.sqlstate": "\(timeout.error.sqlState ?? "")",
                ])
            let a = try loadPiece(data, chunk: chunk, rows: first, idBase: idBase)
            return a + (try loadPiece(data, chunk: chunk, rows: second, idBase: idBase))
        }
    }

    /// Loads one piece, retrying transient failures (connection lost, server restarting, deadlock, serialization
    /// failure) as `database.retry` allows. A statement timeout is not retried here: it throws ``PieceTimedOut``.
    ///
    /// Every retry runs on a new connection, since the old one may be dead. Before reloading, the ledger is asked
    /// whether the piece is already committed: when the connection broke after the server committed but before the
    /// acknowledgement arrived, the piece is counted from its ledger row and not loaded twice. A retry first checks
    /// that the session holding the load's advisory lock is still alive; when it is not (the server restarted), the
    /// run stops with exit 69 instead of loading without the lock.
    ///
    /// - Returns: what the piece changed (read back from the ledger when an earlier attempt had committed it).
    mutating func loadRetrying(
        _ data: ChunkData, chunk: ChunkRecord, rows: Range<Int>, idBase: Int64? = nil
    ) throws -> ChunkLoader.Outcome {
        var attempt = 0
        let whole = rows == 0..<chunk.rows
        let what = whole ? "chunk \(chunk.file)" : "chunk \(chunk.file) rows \(ChunkPieces.describe([rows]))"
        let context = self.context
        var loader = self.loader
        defer { self.loader = loader }
        return try context.database.retry.run(what, logger: context.logger) { () throws -> ChunkLoader.Outcome in
            attempt += 1
            if attempt > 1 {
                loader = nil
                try context.lockSession.ensureAlive()
            }
            var current = try loader ?? Self.openLoader(context)
            defer { loader = current }
            if attempt > 1,
                let done = try context.ledger.committedPieces(
                    names: [chunk.file], sha256s: [chunk.sha256], on: current.db
                )[LoadLedger.key(name: chunk.file, sha256: chunk.sha256)]?.piece(covering: rows)
            {
                context.logger.warning(
                    "chunk was already committed; its acknowledgement was lost, it is not loaded again",
                    metadata: [
                        "chunk": "\(chunk.file)", "rows": "\(ChunkPieces.describe([rows]))",
                        "ledger.run": "\(done.runID)",
                    ])
                context.progress.recordPiece()
                return ChunkLoader.Outcome(inserted: done.inserted, updated: done.updated, steps: [:])
            }
            do {
                let outcome = try current.load(
                    data, rows: rows, name: chunk.file, sha256: chunk.sha256, idBase: idBase)
                context.progress.recordPiece()
                return outcome
            } catch let error as PostgresError where error.isQueryCanceled {
                throw PieceTimedOut(error: error)
            }
        }
    }

    /// Opens a connection for chunks, with the environment's statement timeout, and its loader.
    private static func openLoader(_ context: LoadContext) throws -> ChunkLoader {
        let db = try context.database.open(logger: context.logger)
        if let ms = context.database.statementTimeoutMilliseconds {
            try db.exec("SET statement_timeout = \(ms)")
        }
        var loader = try ChunkLoader(db: db, ledger: context.ledger, runID: context.ledgerRunID, logger: context.logger)
        loader.limits = context.limits
        loader.progress = context.stageProgress
        loader.startedEmpty = context.startedEmpty
        return loader
    }
}

/// The connection that holds the load's advisory lock, shared by the workers to check it is still alive before
/// they retry a chunk.
final class LockSession: @unchecked Sendable {
    // @unchecked: the connection is only used under `lock`; the stage's own thread does not touch it while the
    // workers run (`concurrentPerform` blocks it).
    private let lock = NSLock()
    private let db: PGConnection

    init(db: PGConnection) { self.db = db }

    /// Throws ``PipelineError`` 69 when the session (and with it the advisory lock) is gone.
    func ensureAlive() throws {
        try lock.withLock {
            do {
                _ = try db.exec("SELECT 1")
            } catch {
                throw PipelineError(
                    .unavailable,
                    "the session holding the load lock was lost (\(error)); committed chunks are kept, rerun bems-load "
                        + "to finish")
            }
        }
    }
}

/// Shared state of the load workers: the next chunk to take, the totals, and the first error.
final class LoadProgress: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var nextIndex = 0
    private var _inserted = 0
    private var _updated = 0
    private var _maxSeconds = 0.0
    private var _pieces = 0
    private var _splits = 0
    private var _error: (any Error)?

    var inserted: Int { lock.withLock { _inserted } }
    var updated: Int { lock.withLock { _updated } }
    var maxSeconds: Double { lock.withLock { _maxSeconds } }
    var pieces: Int { lock.withLock { _pieces } }
    var splits: Int { lock.withLock { _splits } }
    var error: (any Error)? { lock.withLock { _error } }

    /// The next chunk to take, or `nil` when all are taken or a worker failed.
    func next<Chunk>(_ chunks: [Chunk]) -> Chunk? {
        lock.withLock {
            guard _error == nil, nextIndex < chunks.count else { return nil }
            defer { nextIndex += 1 }
            return chunks[nextIndex]
        }
    }

    func record(inserted: Int, updated: Int, seconds: Double) {
        lock.withLock {
            _inserted += inserted
            _updated += updated
            _maxSeconds = max(_maxSeconds, seconds)
        }
    }

    /// Counts a piece committed by this run.
    func recordPiece() { lock.withLock { _pieces += 1 } }

    /// Counts a piece split in two after a statement timeout.
    func recordSplit() { lock.withLock { _splits += 1 } }

    func fail(_ error: any Error) {
        lock.withLock { if _error == nil { _error = error } }
    }
}
