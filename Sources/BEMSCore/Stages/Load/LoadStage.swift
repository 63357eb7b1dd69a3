import Foundation
import Logging

/// The load stage: writes the current dedupe run's chunks into `sensor_readings`, exactly once, then verifies.
///
/// Safety envelope:
/// - Every chunk's SHA-256 is checked against the dedupe manifest before anything is loaded; a mismatch names the
///   chunk and stops the run (exit 74).
/// - Each chunk is one transaction with its ledger rows (see ``ChunkLoader``). A chunk whose (name, SHA-256) is
///   already `committed` in the ledger, by any run, is skipped, so a rerun after a crash (even `kill -9`) converges.
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
        /// When `sensor_readings` is empty, drop its secondary indexes (BRIN, floor) for the load and rebuild them
        /// after (``Schema/setup(on:)`` recreates them on the next run if this one is killed).
        /// Measured on 10 M generated readings: the load took about half the time with the rebuild included.
        package var dropIndexesOnFirstLoad = true
        /// Chunks loaded at once, each worker on its own connection (default: one per core, at most 4). Chunks are
        /// disjoint (one floor-day each), so no two workers ever write the same keys or the same ledger rows.
        package var workers = min(4, max(1, ProcessInfoCores.count))

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
        package var verify: VerifyReport?
        package var exitStatus: ExitStatus
    }

    /// Runs the stage.
    ///
    /// - Throws: ``PipelineError`` 66 (no dedupe run), 74 (chunk checksum or read failure), 65 (database changed since
    ///   dedupe), 69 (database unavailable), 73 (locked); ``PostgresError`` for other database failures.
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
        // Connect, set up and lock as one retried step: each part is idempotent, and a session lost halfway (server
        // restarting) released whatever it held.
        let db = try options.database.retry.run("load setup", logger: logger) { () throws -> PGConnection in
            let db = try options.database.connect(logger: logger)
            try DatabaseSetup.ensure(on: db, timeZone: options.config.timeZone, ledgerSchema: options.ledgerSchema)
            try ledger.lock(on: db)
            return db
        }
        defer { ledger.unlock(on: db) }

        let committed = try ledger.committedChunks(
            names: dedupe.chunks.map(\.file), sha256s: dedupe.chunks.map(\.sha256), on: db)
        let pending = dedupe.chunks.filter { committed[$0.file + "|" + $0.sha256] == nil }
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
                verify: report, exitStatus: report?.passed == false ? .dataError : .ok)
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
            ])

        let schema = Schema(timeZone: options.config.timeZone, ledgerSchema: options.ledgerSchema)
        var droppedIndexes = false
        if options.dropIndexesOnFirstLoad, pending.count > 1,
            try db.exec("SELECT NOT EXISTS (SELECT 1 FROM \(Schema.readingsTable))").scalar() == "t",
            try DatabaseSetup.ownsReadings(on: db)
        {
            try db.exec(
                "DROP INDEX IF EXISTS sensor_readings_timestamp_brin, sensor_readings_floor_number_timestamp_idx")
            droppedIndexes = true
            logger.info("first load: secondary indexes dropped, rebuilt after the last chunk")
        }
        let progress = LoadProgress()
        do {
            try loadChunks(
                pending, directory: dedupeDir, workers: options.workers, database: options.database,
                ledger: ledger, ledgerRunID: ledgerRunID, lockSession: LockSession(db: db), progress: progress,
                logger: logger)
            let inserted = progress.inserted
            if droppedIndexes {
                let t0 = Date()
                try schema.setup(on: db)
                logger.info(
                    "secondary indexes rebuilt",
                    metadata: ["seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))"])
            }
            // Fresh planner statistics after a big load, so verify (and the application) get index plans.
            if droppedIndexes || inserted >= 1_000_000 {
                let t0 = Date()
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
        let manifest = StageManifest(
            stage: .load, runID: runID, previousRunID: work.currentRunID(.load),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: Fingerprint.make(.load, [dedupe.fingerprint, dedupe.runID]), upstreamRunID: dedupe.runID,
            inputs: [], chunks: [], passed: true,
            totals: [
                "ledgerRunID": Int(ledgerRunID), "inserted": inserted, "updated": updated,
                "chunksLoaded": pending.count, "chunksSkipped": dedupe.chunks.count - pending.count,
                "maxChunkMilliseconds": Int((maxSeconds * 1000).rounded()),
            ],
            seconds: Date().timeIntervalSince(started))
        try work.publish(manifest)

        var report: VerifyReport?
        var status = ExitStatus.ok
        if !options.skipVerify {
            let r = try VerifyStage.verify(
                loadManifest: manifest, work: work, ledger: ledger, db: db, logger: logger)
            report = r
            if !r.passed { status = .dataError }
        }
        logger.notice(
            "load finished",
            metadata: [
                "run": "\(runID)", "ledger.run": "\(ledgerRunID)", "rows.inserted": "\(inserted)",
                "rows.updated": "\(updated)", "chunks.loaded": "\(pending.count)",
                "chunks.skipped": "\(dedupe.chunks.count - pending.count)",
                "seconds": "\(String(format: "%.2f", manifest.seconds))",
                "verify": "\(report.map { $0.passed ? "passed" : "FAILED" } ?? "skipped")",
            ])
        return Result(
            manifest: manifest, upToDate: false, ledgerRunID: ledgerRunID, inserted: inserted, updated: updated,
            chunksLoaded: pending.count, chunksSkipped: dedupe.chunks.count - pending.count,
            maxChunkSeconds: maxSeconds, verify: report, exitStatus: status)
    }

    /// Loads one chunk, retrying transient failures (connection lost, server restarting, deadlock, serialization
    /// failure, statement timeout) as `database.retry` allows.
    ///
    /// Every retry runs on a new connection, since the old one may be dead. Before reloading, the ledger is asked
    /// whether the chunk is already committed: when the connection broke after the server committed but before the
    /// acknowledgement arrived, the chunk is counted from its ledger row and not loaded twice. A retry first checks
    /// that the session holding the load's advisory lock is still alive; when it is not (the server restarted), the
    /// run stops with exit 69 instead of loading without the lock.
    ///
    /// - Returns: what the chunk changed (read back from the ledger when an earlier attempt had committed it).
    static func loadRetrying(
        _ loader: inout ChunkLoader?, _ data: ChunkData, chunk: ChunkRecord, database: DatabaseTarget,
        ledger: LoadLedger, ledgerRunID: Int64, lockSession: LockSession, logger: Logger
    ) throws -> ChunkLoader.Outcome {
        var attempt = 0
        return try database.retry.run("chunk \(chunk.file)", logger: logger) { () throws -> ChunkLoader.Outcome in
            attempt += 1
            if attempt > 1 {
                loader = nil
                try lockSession.ensureAlive()
            }
            if loader == nil {
                let db = try PGConnection(conninfo: database.conninfo, logger: logger)
                loader = try ChunkLoader(db: db, ledger: ledger, runID: ledgerRunID, logger: logger)
            }
            guard var current = loader else { throw PostgresError(code: .invalidState, message: "no loader") }
            if attempt > 1,
                let done = try ledger.committedChunks(
                    names: [chunk.file], sha256s: [chunk.sha256], on: current.db)[chunk.file + "|" + chunk.sha256]
            {
                logger.warning(
                    "chunk was already committed; its acknowledgement was lost, it is not loaded again",
                    metadata: ["chunk": "\(chunk.file)", "ledger.run": "\(done.runID)"])
                return ChunkLoader.Outcome(inserted: done.inserted, updated: done.updated, steps: [:])
            }
            defer { loader = current }
            return try current.load(data, name: chunk.file, sha256: chunk.sha256)
        }
    }

    /// Loads chunks on up to `workers` connections; the first failure stops the others after their current chunk
    /// (whose transaction either committed whole or rolled back whole).
    static func loadChunks(
        _ chunks: [ChunkRecord], directory: String, workers: Int, database: DatabaseTarget, ledger: LoadLedger,
        ledgerRunID: Int64, lockSession: LockSession, progress: LoadProgress, logger: Logger
    ) throws {
        let width = max(1, min(workers, chunks.count))
        DispatchQueue.concurrentPerform(iterations: width) { _ in
            do {
                var loader: ChunkLoader?
                while let chunk = progress.next(chunks) {
                    let t0 = Date()
                    let data: ChunkData
                    do {
                        let bytes = try ChunkFile.read(directory + "/" + chunk.file)
                        guard Digest.sha256Hex(bytes) == chunk.sha256 else {
                            throw PipelineError.io("chunk \(chunk.file) changed after its checksum was verified")
                        }
                        data = try ChunkReader.decode(bytes).data
                    } catch let error as ChunkError {
                        throw PipelineError.io("chunk \(chunk.file): \(error)")
                    }
                    let outcome = try loadRetrying(
                        &loader, data, chunk: chunk, database: database, ledger: ledger, ledgerRunID: ledgerRunID,
                        lockSession: lockSession, logger: logger)
                    let seconds = Date().timeIntervalSince(t0)
                    progress.record(inserted: outcome.inserted, updated: outcome.updated, seconds: seconds)
                    logger.info(
                        "chunk loaded",
                        metadata: [
                            "chunk": "\(chunk.file)", "rows.inserted": "\(outcome.inserted)",
                            "rows.updated": "\(outcome.updated)", "seconds": "\(String(format: "%.3f", seconds))",
                            "seconds.steps":
                                "\(outcome.steps.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3f", $0.value))" }.joined(separator: " "))",
                        ])
                }
            } catch let error as PostgresError where error.isTransient {
                progress.fail(
                    PipelineError(
                        .unavailable,
                        "the database stayed unavailable beyond the retry policy (\(database.retry.maxAttempts) "
                            + "attempts, \(Int(database.retry.budget)) s): \(error); committed chunks are kept, "
                            + "rerun bems-load to finish"))
            } catch {
                progress.fail(error)
            }
        }
        if let error = progress.error { throw error }
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
    private var _error: (any Error)?

    var inserted: Int { lock.withLock { _inserted } }
    var updated: Int { lock.withLock { _updated } }
    var maxSeconds: Double { lock.withLock { _maxSeconds } }
    var error: (any Error)? { lock.withLock { _error } }

    /// The next chunk to load, or `nil` when all are taken or a worker failed.
    func next(_ chunks: [ChunkRecord]) -> ChunkRecord? {
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

    func fail(_ error: any Error) {
        lock.withLock { if _error == nil { _error = error } }
    }
}
