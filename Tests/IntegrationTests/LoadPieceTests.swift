import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// Statement timeouts shrink the work: a chunk whose COPY or update hits `statement_timeout` is loaded in halves.
///
/// The slow database is real and deterministic: statement-level triggers on `sensor_readings` (in the test's schema)
/// sleep 120 µs per row the statement inserted or updated, and the loader's sessions get a 250 ms statement timeout.
/// A statement of 1440 rows sleeps 173 ms and passes; 2880 rows sleep 346 ms and always time out. Each chunk holds
/// 11 520 readings (8 sensors × 1440 minutes of one floor and UTC day), so it is split at least 7 times
/// (11 520 → 2 × 5760 → 4 × 2880 → 8 × 1440) before its pieces pass.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(10)))
struct LoadPieceTests {
    static let perRowSeconds = 0.000_12
    static let timeoutMilliseconds = 250
    /// 2019-01-01 00:00 UTC: one chunk per floor.
    static let day0: Int64 = 1_546_300_800
    static let rowsPerChunk = 8 * 1440

    static func readings() -> [LoadFixture.Reading] {
        LoadFixture.readings(floors: 1...2, sensorsPerFloor: 8, start: day0, minutes: 1440)
    }

    /// Creates `sensor_readings` and the sleeping triggers in the fixture's schema.
    static func slowDown(_ f: LoadFixture) throws {
        try Schema(ledgerSchema: f.schema).setup(on: f.db)
        try f.db.exec(
            """
            CREATE FUNCTION bems_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_sleep((SELECT count(*) FROM changed) * \(perRowSeconds));
                RETURN NULL;
            END $$;
            CREATE TRIGGER slow_insert AFTER INSERT ON sensor_readings REFERENCING NEW TABLE AS changed
                FOR EACH STATEMENT EXECUTE FUNCTION bems_test_slow();
            CREATE TRIGGER slow_update AFTER UPDATE ON sensor_readings REFERENCING NEW TABLE AS changed
                FOR EACH STATEMENT EXECUTE FUNCTION bems_test_slow();
            """)
    }

    static func speedUp(_ f: LoadFixture) throws {
        try f.db.exec("DROP TRIGGER slow_insert ON sensor_readings; DROP TRIGGER slow_update ON sensor_readings")
    }

    /// Load options with the statement timeout, a floor of 500 rows and quick retries.
    static func options(_ f: LoadFixture, minPieceRows: Int = 500) -> LoadStage.Options {
        var o = f.loadOptions()
        o.database.statementTimeoutMilliseconds = timeoutMilliseconds
        o.database.retry = RetryPolicy(baseDelay: 0.1, maxAttempts: 4, budget: 10, jitter: .none)
        o.config.load.minPieceRows = minPieceRows
        o.workers = 2
        return o
    }

    /// Every chunk of the current dedupe run is covered by its committed pieces exactly once.
    static func expectPiecesCoverEveryChunkOnce(_ f: LoadFixture) throws {
        let dedupe = try #require(try f.work.currentManifest(.dedupe))
        let committed = try LoadLedger(schema: f.schema).committedPieces(
            names: dedupe.chunks.map(\.file), sha256s: dedupe.chunks.map(\.sha256), on: f.db)
        for chunk in dedupe.chunks {
            let coverage = try #require(committed[LoadLedger.key(name: chunk.file, sha256: chunk.sha256)])
            #expect(coverage.gaps(rows: chunk.rows).isEmpty, "\(chunk.file)")
            #expect(!coverage.hasOverlap, "\(chunk.file)")
            #expect(coverage.rowCount == chunk.rows)
            #expect(coverage.inserted == chunk.inserts && coverage.updated == chunk.updates)
        }
        #expect(
            try f.count(
                "SELECT count(*) FROM (SELECT 1 FROM sensor_readings GROUP BY sensor_id, \"timestamp\" HAVING count(*) > 1) d"
            ) == 0)
    }

    // MARK: - Halving

    @Test func timedOutChunksAreLoadedInPiecesThatVerifyAndRollBackExactly() async throws {
        try await ExclusiveLoadTests.shared.run { try await halving() }
    }

    func halving() async throws {
        try await withLoadFixture { f in
            try Self.slowDown(f)
            let readings = Self.readings()
            try f.publishDedupe(readings)
            let chunks = try #require(try f.work.currentManifest(.dedupe)).chunks
            try #require(chunks.count == 2 && chunks.allSatisfy { $0.rows == Self.rowsPerChunk })

            let capture = LogCapture()
            let logger = capture.logger()
            let options = Self.options(f)
            let t0 = Date()
            let first = try await onOwnThread { try LoadStage.runLoading(options, logger: logger) }
            let firstSeconds = Date().timeIntervalSince(t0)
            #expect(first.exitStatus == .ok)
            #expect(first.verify?.passed == true)
            #expect(first.inserted == readings.count)
            #expect(first.splits >= 7 * chunks.count, "\(capture.lines())")
            #expect(first.pieces == chunks.count + first.splits)
            #expect(first.manifest?.totals["splits"] == first.splits)
            #expect(first.manifest?.totals["pieces"] == first.pieces)
            let splitLogs = capture.entries("statement timeout: loading the piece in two halves")
            #expect(splitLogs.count == first.splits)
            #expect(splitLogs.first?["piece.rows"] == "\(Self.rowsPerChunk)")
            #expect(splitLogs.first?["halves"] == "5760+5760")
            #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == first.pieces)
            #expect(try f.count("SELECT min(row_count) FROM loaded_chunks") >= 500)
            #expect(try f.count("SELECT max(row_count) FROM loaded_chunks") <= 1440)
            try Self.expectPiecesCoverEveryChunkOnce(f)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(try f.verify().passed)
            let afterFirst = try f.checksum()

            // Every reading changes: the chunks are all updates, and the UPDATE statement hits the timeout.
            var changed = readings
            for i in changed.indices { changed[i].value += 1 }
            try f.publishDedupe(changed)
            let t1 = Date()
            let second = try await onOwnThread { try LoadStage.runLoading(options, logger: logger) }
            let secondSeconds = Date().timeIntervalSince(t1)
            #expect(second.exitStatus == .ok && second.verify?.passed == true)
            #expect(second.updated == readings.count && second.inserted == 0)
            #expect(second.splits >= 7 * chunks.count)
            #expect(try f.count("SELECT count(*) FROM replaced_readings") == readings.count)
            try Self.expectPiecesCoverEveryChunkOnce(f)
            #expect(try f.tableContent() == f.expectedContent())

            // Rolling the update run back restores the first run's content exactly (rollback's own UPDATE would
            // sleep, so the triggers go first).
            try Self.speedUp(f)
            let rollback = try f.rollback()
            #expect(rollback.ledgerRunID == second.ledgerRunID)
            #expect(rollback.chunks == chunks.count && rollback.pieces == second.pieces)
            #expect(rollback.restored == readings.count && rollback.deleted == 0)
            #expect(try f.checksum() == afterFirst)
            #expect(try f.verify().passed)
            Logger(label: "test.pieces").notice(
                "statement timeouts split the chunks",
                metadata: [
                    "insert.seconds": "\(String(format: "%.1f", firstSeconds))", "insert.splits": "\(first.splits)",
                    "insert.pieces": "\(first.pieces)", "update.seconds": "\(String(format: "%.1f", secondSeconds))",
                    "update.splits": "\(second.splits)", "update.pieces": "\(second.pieces)",
                    "chunks": "\(chunks.count)", "rows": "\(readings.count)",
                ])
        }
    }

    // MARK: - At the floor

    @Test func aPieceAtTheFloorThatStillTimesOutFailsCleanlyAndARerunFinishes() async throws {
        try await ExclusiveLoadTests.shared.run { try await atTheFloor() }
    }

    func atTheFloor() async throws {
        try await withLoadFixture { f in
            try Self.slowDown(f)
            try f.publishDedupe(Self.readings())
            // A floor of 2880 rows: the 2880-row pieces time out and cannot be halved.
            let options = Self.options(f, minPieceRows: 2880)
            let capture = LogCapture()
            let logger = capture.logger()
            let error = await #expect(throws: PipelineError.self) {
                try await onOwnThread { try LoadStage.runLoading(options, logger: logger) }
            }
            #expect(error?.exitStatus == .unavailable)
            #expect(error?.message.contains("(2880 readings) still hit statement_timeout 250 ms") == true)
            #expect(error?.message.contains("load.minPieceRows (2880)") == true)
            #expect(error?.message.contains("environments.dev.statementTimeout") == true)
            #expect(error?.message.contains("rerun bems-load") == true)
            #expect(
                try f.count("SELECT count(*) FROM sensor_readings")
                    == f.count("SELECT coalesce(sum(inserted), 0) FROM loaded_chunks WHERE status = 'committed'"))
            #expect(try f.count("SELECT count(*) FROM runs WHERE stage = 'load' AND status = 'failed'") == 1)
            // 11 520 -> 2 x 5760 -> 2 x 2880 per chunk before the first 2880-row piece fails: at most 3 splits each.
            let splits = capture.entries("statement timeout: loading the piece in two halves")
            #expect(splits.count >= 2 && splits.count <= 6)
            #expect(splits.allSatisfy { $0["piece.rows"] != "2880" })

            // A lower floor finishes the load exactly.
            let lowerFloor = Self.options(f)
            let rerun = try await onOwnThread { try LoadStage.runLoading(lowerFloor, logger: logger) }
            #expect(rerun.exitStatus == .ok && rerun.verify?.passed == true)
            try Self.expectPiecesCoverEveryChunkOnce(f)
            #expect(try f.tableContent() == f.expectedContent())

            // Verify notices a missing piece: mark the second piece of one chunk rolled back in the ledger.
            let piece = try #require(
                try f.db.exec(
                    "SELECT chunk_name, piece_start, row_count FROM loaded_chunks WHERE piece_start > 0 ORDER BY 1, 2 LIMIT 1"
                ).rows.first)
            try f.db.exec(
                "UPDATE loaded_chunks SET status = 'rolled_back', rolled_back_at = now() WHERE chunk_name = $1 AND piece_start = $2",
                parameters: [piece[0], piece[1]])
            let report = try f.verify()
            let start = Int(piece[1] ?? "") ?? -1
            let end = start + (Int(piece[2] ?? "") ?? 0) - 1
            let incomplete = report.mismatches.filter { $0.kind == "chunk-incomplete" }
            #expect(incomplete.count == 1)
            #expect(incomplete.first?.chunk == piece[0])
            #expect(incomplete.first?.actual.hasSuffix("missing rows \(start)-\(end)") == true)
            #expect(report.mismatches.contains { $0.kind == "chunk-counts" && $0.chunk == piece[0] })
        }
    }

    // MARK: - Killed mid-way

    @Test func aLoaderKilledBetweenPiecesIsFinishedByARerunWithoutDuplicates() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: LoadKillTests.executable), "build bems-load first")
        try await ExclusiveLoadTests.shared.run { try await killedBetweenPieces() }
    }

    func killedBetweenPieces() async throws {
        try await withLoadFixture { f in
            try Self.slowDown(f)
            let readings = Self.readings()
            try f.publishDedupe(readings)
            let config = f.workRoot + "-pipeline.json"
            try AtomicFile.write(
                Array(
                    """
                    {"load": {"minPieceRows": 500},
                     "environments": {"dev": {"statementTimeout": "\(Self.timeoutMilliseconds)ms",
                       "retry": {"baseDelaySeconds": 0.1, "maxAttempts": 4, "budgetSeconds": 10, "jitter": "none"}}}}
                    """.utf8), to: config)
            defer { try? FileManager.default.removeItem(atPath: config) }
            func runLoader(_ log: String) throws -> ChildProcess {
                var env = ProcessInfo.processInfo.environment
                env["BEMS_DEV_DATABASE_URL"] = f.target.conninfo
                return try ChildProcess(
                    [
                        LoadKillTests.executable, "--config", config, "--work-dir", f.workRoot, "--ledger-schema",
                        f.schema, "--env", "dev", "--log-level", "warning",
                    ], environment: env, output: "/dev/null", errors: log)
            }
            let firstLog = f.workRoot + "-first.log"
            let rerunLog = f.workRoot + "-rerun.log"
            defer {
                try? FileManager.default.removeItem(atPath: firstLog)
                try? FileManager.default.removeItem(atPath: rerunLog)
            }

            // Kill once a chunk is partly committed: some of its pieces are in the ledger, not all.
            let loader = try runLoader(firstLog)
            let partlyLoaded = """
                SELECT count(*) FROM (SELECT chunk_name FROM loaded_chunks WHERE status = 'committed'
                                      GROUP BY chunk_name HAVING sum(row_count) < \(Self.rowsPerChunk)) p
                """
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, loader.poll() == nil {
                if (try? f.count(partlyLoaded)) ?? 0 > 0,
                    (try? f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")) ?? 0 >= 3
                {
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(loader.poll() == nil, "the loader finished before it was killed")
            kill(loader.pid, SIGKILL)
            #expect(loader.wait() == 128 + SIGKILL)
            let piecesBefore = try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")
            let partial = try f.count(partlyLoaded)
            try #require(partial > 0, "no chunk was partly loaded when the loader died")
            #expect(
                try f.count("SELECT count(*) FROM sensor_readings")
                    == f.count("SELECT coalesce(sum(inserted), 0) FROM loaded_chunks WHERE status = 'committed'"))

            let rerun = try runLoader(rerunLog)
            let status = rerun.wait()
            let stderr = (try? String(contentsOfFile: rerunLog, encoding: .utf8)) ?? ""
            #expect(status == 0, "\(stderr)")
            #expect(stderr.contains("statement timeout: loading the piece in two halves"))
            try Self.expectPiecesCoverEveryChunkOnce(f)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(try f.verify().passed)
            // The pieces committed before the kill stayed and were not loaded again.
            #expect(try f.count("SELECT count(DISTINCT run_id) FROM loaded_chunks WHERE status = 'committed'") == 2)
            let piecesAfter = try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")
            Logger(label: "test.pieces").notice(
                "loader killed between pieces",
                metadata: [
                    "pieces.before": "\(piecesBefore)", "chunks.partly": "\(partial)", "pieces.after": "\(piecesAfter)",
                ])
        }
    }
}
