import Foundation
import Logging
import Testing

@testable import BEMSCore

/// Helpers for stage tests: a work dir with a hand-made normalize run, and a connection string for the stage that
/// lands in the test's schema.
enum StageFixture {
    static let logger = Logger(label: "bems.test")

    /// The test server's connection string with `search_path` (and optionally `TimeZone`) set for every session, so
    /// connections the stage opens itself use the test's schema.
    static func conninfo(schema: String, timeZone: String? = nil) throws -> String {
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        var options = "-c search_path=\(schema)"
        if let timeZone { options += " -c TimeZone=\(timeZone)" }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            let encoded = options.replacing(" ", with: "%20").replacing("=", with: "%3D").replacing("/", with: "%2F")
            return url + (url.contains("?") ? "&" : "?") + "options=" + encoded
        }
        return url + " options='\(options)'"
    }

    /// Configuration with a temporary work dir and the dev database variable pointing at the test schema.
    static func config(_ dir: String) -> PipelineConfig {
        var config = PipelineConfig()
        config.workDir = dir + "/work"
        return config
    }

    /// One normalize chunk to put in the fake run.
    struct Chunk {
        var floor: Int
        var day: String
        var sourceIndex: Int
        var sequence = 0
        var rows: [(String, Int64, Int64, ReadingStatus)]
    }

    /// Writes chunk files and publishes a normalize manifest, as the normalize stage would.
    @discardableResult
    static func publishNormalizeRun(work: WorkDir, sources: [String], chunks: [Chunk]) throws -> StageManifest {
        let runID = try work.createRun(.normalize)
        let dir = work.runDirectory(.normalize, runID)
        try AtomicFile.makeDirectory(dir + "/chunks")
        var records: [ChunkRecord] = []
        for chunk in chunks {
            var data = ChunkData()
            for (id, t, v, s) in chunk.rows {
                data.append(sensorIndex: data.addSensor(id), timestamp: t, value: v, status: s)
            }
            let source = sources[chunk.sourceIndex]
            data.metadata = ["floor": "\(chunk.floor)", "day": chunk.day, "source": source]
            let bytes = try ChunkWriter.encode(data)
            let name = "chunks/f\(chunk.floor)-\(chunk.day)-s\(chunk.sourceIndex)-\(chunk.sequence).bemc"
            try ChunkFile.write(bytes, to: dir + "/" + name)
            records.append(
                ChunkRecord(
                    file: name, sha256: Digest.sha256Hex(bytes), bytes: bytes.count, rows: data.count,
                    minTimestamp: data.timestamps.min() ?? 0, maxTimestamp: data.timestamps.max() ?? 0,
                    floor: chunk.floor, day: chunk.day, source: source))
        }
        let manifest = StageManifest(
            stage: .normalize, runID: runID, previousRunID: work.currentRunID(.normalize),
            createdAt: ISO8601DateFormatter().string(from: Date()), bemsVersion: BEMS.version, env: "dev",
            fingerprint: Digest.sha256Hex(Array(runID.utf8)), upstreamRunID: nil,
            inputs: sources.enumerated().map {
                InputRecord(path: "/in/\($0.element)", name: $0.element, floor: 1, sha256: "", bytes: 0)
            },
            chunks: records, passed: true, totals: [:], seconds: 0)
        try work.publish(manifest)
        return manifest
    }

    /// Loads readings straight into `sensor_readings` with binary COPY.
    static func copyReadings(_ rows: [(String, Int64, Int64?, ReadingStatus)], into db: PGConnection) throws {
        var encoder = BinaryCopyEncoder()
        var copy = try db.copyIn(BinaryCopyEncoder.copyReadingsSQL(table: "sensor_readings"))
        encoder.appendHeader()
        for (id, t, v, s) in rows {
            encoder.appendReading(unixSeconds: t, value: v, status: s, sensor: SensorFields(sensorID: id)!)
        }
        encoder.appendTrailer()
        try encoder.flush(to: &copy)
        _ = try copy.finish()
    }

    /// Decodes every chunk of a dedupe run into (sensor@t -> (action, value, status, previous value, status)).
    static func decisions(_ result: DedupeStage.Result) throws -> [String: String] {
        var out: [String: String] = [:]
        for record in result.manifest.chunks {
            let data = try ChunkReader.decode(ChunkFile.read(result.runDirectory + "/" + record.file)).data
            for i in 0..<data.count {
                let key = "\(data.sensorIDs[Int(data.sensorIndexes[i])])@\(data.timestamps[i])"
                let previous = data.previousValues?[i].map(String.init) ?? "-"
                let previousStatus = data.previousStatuses?[i]?.label ?? "-"
                out[key] =
                    "\(data.actions?[i] == .update ? "update" : "insert") \(data.values[i])/\(data.statuses[i].label)"
                    + " was \(previous)/\(previousStatus)"
            }
        }
        return out
    }
}

@Suite(
    .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason),
    .timeLimit(.minutes(3))
)
struct DedupeStageTests {
    let day1: Int64 = 1_551_632_400  // 2019-03-04 00:00 Bangkok (17:00 UTC the day before)
    let day2: Int64 = 1_551_632_400 + 86_400

    func options(_ dir: StageTempDirectory, schema: String) throws -> DedupeStage.Options {
        var options = DedupeStage.Options(config: StageFixture.config(dir.path), env: "dev")
        options.environment = ["BEMS_DEV_DATABASE_URL": try StageFixture.conninfo(schema: schema)]
        options.parallelism = 2
        return options
    }

    @Test func withoutATableEverythingIsAnInsertWithoutLookups() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { _, schema in
            let work = WorkDir(root: dir.path + "/work")
            try StageFixture.publishNormalizeRun(
                work: work, sources: ["a.csv", "b.csv"],
                chunks: [
                    .init(
                        floor: 1, day: "2019-03-04", sourceIndex: 0,
                        rows: [
                            ("f1_z1_light", day1, 10_000, .normal), ("f1_z1_light", day1 + 60, 20_000, .normal),
                            ("f1_z1_plug", day1, 5, .anomaly),
                        ]),
                    .init(
                        floor: 1, day: "2019-03-04", sourceIndex: 1,
                        rows: [
                            ("f1_z1_light", day1 + 60, 20_000, .normal),  // identical duplicate
                            ("f1_z1_plug", day1, 6, .normal),  // conflict: b wins
                        ]),
                    .init(floor: 2, day: "2019-03-05", sourceIndex: 0, rows: [("f2_z1_ac1", day2, 1, .normal)]),
                ])
            let result = try await DedupeStage.run(try options(dir, schema: schema), logger: StageFixture.logger)
            #expect(!result.upToDate)
            #expect(!result.report.tableExisted)
            #expect(result.lookupQueries == 0)
            #expect(result.report.readingsIn == 6)
            #expect(result.report.duplicatesDropped == 1)
            #expect(result.report.conflicts == 1)
            #expect(result.report.inserts == 4 && result.report.updates == 0 && result.report.skips == 0)
            #expect(result.manifest.stage == .dedupe)
            #expect(result.manifest.chunks.map(\.file) == ["chunks/f1-2019-03-04.bemc", "chunks/f2-2019-03-05.bemc"])
            #expect(result.manifest.chunks.map(\.inserts) == [3, 1])
            #expect(result.manifest.totals["inserts"] == 4)
            #expect(!result.report.snapshotTakenAt.isEmpty)
            let decisions = try StageFixture.decisions(result)
            #expect(decisions["f1_z1_plug@\(day1)"] == "insert 6/normal was -/-")
            let conflicts = try String(contentsOfFile: result.runDirectory + "/conflicts.jsonl", encoding: .utf8)
            #expect(conflicts.split(separator: "\n").count == 1)
            #expect(conflicts.contains(#""kept":{"value":"0.0006","status":"normal","source":"/in/b.csv"}"#))
            #expect(conflicts.contains(#""dropped":{"value":"0.0005","status":"anomaly","source":"/in/a.csv"}"#))
            // The manifest's chunk hashes match the files (the load stage verifies them the same way).
            for record in result.manifest.chunks {
                let bytes = try ChunkFile.read(result.runDirectory + "/" + record.file)
                #expect(Digest.sha256Hex(bytes) == record.sha256)
            }
        }
    }

    @Test func emptyTableGivesAllInserts() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            try StageFixture.publishNormalizeRun(
                work: WorkDir(root: dir.path + "/work"), sources: ["a.csv"],
                chunks: [.init(floor: 1, day: "2019-03-04", sourceIndex: 0, rows: [("f1_z1_light", day1, 1, .normal)])])
            let result = try await DedupeStage.run(try options(dir, schema: schema), logger: StageFixture.logger)
            #expect(result.report.tableExisted)
            #expect(result.report.inserts == 1 && result.lookupQueries == 0)
        }
    }

    @Test func overlappingBatchGivesInsertsUpdatesAndSkips() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            // Stored: light at t0..t3, plug at t0 with NULL value, ac on another floor.
            let t = day1
            try StageFixture.copyReadings(
                [
                    ("f1_z1_light", t, 10_000, .normal), ("f1_z1_light", t + 60, 20_000, .normal),
                    ("f1_z1_light", t + 120, 30_000, .normal), ("f1_z1_light", t + 180, 40_000, .anomaly),
                    ("f1_z1_plug", t, nil, .normal),
                    ("f2_z1_ac1", t - 86_400, 7, .normal),
                    ("f1_z3_light", t, 5, .normal),
                ], into: db)
            // A status the pipeline does not write: never equal to a reading's, so an update.
            try db.exec("UPDATE sensor_readings SET status = 'maintenance' WHERE sensor_id = 'f1_z3_light'")
            try StageFixture.publishNormalizeRun(
                work: WorkDir(root: dir.path + "/work"), sources: ["a.csv"],
                chunks: [
                    .init(
                        floor: 1, day: "2019-03-04", sourceIndex: 0,
                        rows: [
                            ("f1_z1_light", t, 10_000, .normal),  // identical: skip
                            ("f1_z1_light", t + 60, 20_001, .normal),  // value changed: update
                            ("f1_z1_light", t + 180, 40_000, .normal),  // status changed: update
                            ("f1_z1_light", t + 240, 50_000, .normal),  // after the watermark: insert
                            ("f1_z1_plug", t, 3, .normal),  // stored NULL: update
                            ("f1_z1_plug", t + 60, 4, .normal),  // new key: insert
                            ("f1_z2_light", t, 8, .normal),  // new sensor: insert
                            ("f1_z3_light", t, 5, .normal),  // unknown stored status: update
                        ]),
                    // Floor 2 appends a new day after its sensor's watermark: no lookup.
                    .init(floor: 2, day: "2019-03-04", sourceIndex: 0, rows: [("f2_z1_ac1", t, 9, .normal)]),
                ])
            let result = try await DedupeStage.run(try options(dir, schema: schema), logger: StageFixture.logger)
            #expect(result.report.inserts == 4)
            #expect(result.report.updates == 4)
            #expect(result.report.skips == 1)
            #expect(result.lookupQueries == 1, "only the floor 1 group overlaps stored rows")
            #expect(result.report.sensorsWithRows == 4)
            let decisions = try StageFixture.decisions(result)
            #expect(decisions.count == 8)
            #expect(decisions["f1_z1_light@\(t)"] == nil)
            #expect(decisions["f1_z1_light@\(t + 60)"] == "update 20001/normal was 20000/normal")
            #expect(decisions["f1_z1_light@\(t + 180)"] == "update 40000/normal was 40000/anomaly")
            #expect(decisions["f1_z1_light@\(t + 240)"] == "insert 50000/normal was -/-")
            #expect(decisions["f1_z1_plug@\(t)"] == "update 3/normal was -/normal")
            #expect(decisions["f1_z1_plug@\(t + 60)"] == "insert 4/normal was -/-")
            #expect(decisions["f1_z2_light@\(t)"] == "insert 8/normal was -/-")
            #expect(decisions["f2_z1_ac1@\(t)"] == "insert 9/normal was -/-")
            #expect(decisions["f1_z3_light@\(t)"] == "update 5/normal was 5/-")
            let floor1 = try #require(result.manifest.chunks.first { $0.floor == 1 })
            #expect(floor1.inserts == 3 && floor1.updates == 4 && floor1.skips == 1 && floor1.rows == 7)
        }
    }

    @Test func upToDateRerunDoesNothingUnlessForced() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { _, schema in
            let work = WorkDir(root: dir.path + "/work")
            try StageFixture.publishNormalizeRun(
                work: work, sources: ["a.csv"],
                chunks: [.init(floor: 1, day: "2019-03-04", sourceIndex: 0, rows: [("f1_z1_light", day1, 1, .normal)])])
            var opts = try options(dir, schema: schema)
            let first = try await DedupeStage.run(opts, logger: StageFixture.logger)
            let second = try await DedupeStage.run(opts, logger: StageFixture.logger)
            #expect(second.upToDate)
            #expect(second.manifest.runID == first.manifest.runID)
            #expect(work.runIDs(.dedupe).count == 1)
            opts.force = true
            let forced = try await DedupeStage.run(opts, logger: StageFixture.logger)
            #expect(!forced.upToDate && forced.manifest.runID != first.manifest.runID)
            #expect(forced.manifest.previousRunID == first.manifest.runID)
            // A new normalize run makes the dedupe run stale.
            opts.force = false
            try StageFixture.publishNormalizeRun(
                work: work, sources: ["a.csv"],
                chunks: [.init(floor: 1, day: "2019-03-04", sourceIndex: 0, rows: [("f1_z1_light", day1, 2, .normal)])])
            let third = try await DedupeStage.run(opts, logger: StageFixture.logger)
            #expect(!third.upToDate)
            #expect(work.runIDs(.dedupe).count == 3)
        }
    }

    @Test func corruptedInputChunkIsRefusedWithItsName() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { _, schema in
            let work = WorkDir(root: dir.path + "/work")
            let manifest = try StageFixture.publishNormalizeRun(
                work: work, sources: ["a.csv"],
                chunks: [
                    .init(floor: 1, day: "2019-03-04", sourceIndex: 0, rows: [("f1_z1_light", day1, 1, .normal)]),
                    .init(floor: 1, day: "2019-03-05", sourceIndex: 0, rows: [("f1_z1_light", day2, 1, .normal)]),
                ])
            let path = work.runDirectory(.normalize, manifest.runID) + "/" + manifest.chunks[1].file
            var bytes = try ChunkFile.read(path)
            bytes[bytes.count / 2] ^= 0x40
            try ChunkFile.write(bytes, to: path)
            let error = await #expect(throws: PipelineError.self) {
                try await DedupeStage.run(try options(dir, schema: schema), logger: StageFixture.logger)
            }
            #expect(error?.exitStatus == .ioError)
            #expect(error?.message.contains("f1-2019-03-05-s0-0.bemc") == true)
            #expect(work.currentRunID(.dedupe) == nil)
        }
    }

    @Test func missingNormalizeRunExits66() async throws {
        let dir = StageTempDirectory()
        let error = await #expect(throws: PipelineError.self) {
            try await DedupeStage.run(
                DedupeStage.Options(config: StageFixture.config(dir.path), env: "dev"), logger: StageFixture.logger)
        }
        #expect(error?.exitStatus == .noInput)
        #expect(error?.message.contains("bems-normalize") == true)
    }
}

extension TestDatabase {
    /// ``withSchema(_:)`` for async bodies.
    static func withSchemaAsync(_ body: (PGConnection, String) async throws -> Void) async throws {
        let db = try connect()
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try db.exec("CREATE SCHEMA \(schema)")
        do {
            try db.exec("SET search_path TO \(schema)")
            try await body(db, schema)
        } catch {
            _ = try? db.exec("ROLLBACK")
            _ = try? db.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            throw error
        }
        _ = try? db.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE")
    }
}

/// A temporary folder for a stage's work dir, removed when released.
final class StageTempDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "bems-stage-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
