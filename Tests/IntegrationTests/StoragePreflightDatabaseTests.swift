import Foundation
import Logging
import Testing

@testable import BEMSCore

/// Load's storage pre-flight against a real PostgreSQL: refuses over the limit (exit 75), warns from 80%, counts only
/// chunks the ledger does not hold yet, measures bytes per reading on a loaded table, and reports the size after.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct StoragePreflightDatabaseTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    func check(_ f: LoadFixture, _ config: PipelineConfig, force: Bool = false) throws -> StorageReport? {
        try StoragePreflight.check(
            config: config, env: "dev", database: f.target, ledgerSchema: f.schema, workers: 2, force: force,
            logger: logger)
    }

    @Test func refusesOverTheLimitWarnsAtEightyPercentAndMeasuresAfterTheLoad() async throws {
        try await withLoadFixture { f in
            var config = f.config
            #expect(try check(f, config) == nil, "no dedupe run yet: the load reports that itself")
            // 2 floors x 3 sensors x 1440 minutes.
            try f.publishDedupe(LoadFixture.readings(minutes: 1440))
            // Too few readings to measure: the configured figure counts, 100 kB each (824 MiB in all), so the
            // estimate hardly moves with what other tests do to the shared database meanwhile.
            config.monitoring.bytesPerReading = 100_000

            config.environments["dev"]!.storageLimitMB = 1
            let refused = #expect(throws: PipelineError.self) { try check(f, config) }
            #expect(refused?.exitStatus == .overLimit)
            #expect(
                refused?.message.contains("8640 readings × 100000 B (configured)") == true, "\(refused?.message ?? "")")
            #expect(refused?.message.contains("over the limit") == true)
            #expect(refused?.message.contains("--force") == true)
            #expect(try check(f, config, force: true)?.verdict == .forced)

            let before = try StoragePreflight.measure(on: f.db)
            let estimate = Double(before.databaseBytes) + 8640 * 100_000
            config.environments["dev"]!.storageLimitMB = Int(estimate / 0.9 / 1_048_576)
            let warned = try #require(try check(f, config))
            #expect(warned.verdict == .warn, "\(warned.preflightMessage(env: "dev"))")
            #expect(warned.pendingReadings == 8640)
            #expect(
                warned.connectionsInUse ?? 0 >= 1 && warned.maxConnections ?? 0 > 0 && warned.connectionsPlanned == 3)

            config.environments["dev"]!.storageLimitMB = nil
            _ = try await f.load()
            var after = try #require(try check(f, config))
            #expect(after.pendingReadings == 0, "committed chunks are not counted again")
            #expect(after.verdict == .ok)
            StoragePreflight.measureAfterLoad(&after, database: f.target, logger: logger)
            #expect((after.databaseBytesAfter ?? 0) > 0)
            #expect((after.readingsTableBytes ?? 0) > 8640 * 40)
            #expect(try StoragePreflight.measure(on: f.db).readings == 8640)
        }
    }

    @Test func bytesPerReadingIsMeasuredOnALoadedTable() async throws {
        try await withLoadFixture { f in
            // 7 floors x 8 sensors x 1800 minutes = 100 800 readings, just over the measuring minimum.
            try f.publishDedupe(LoadFixture.readings(floors: 1...7, sensorsPerFloor: 8, minutes: 1800))
            _ = try await f.load()
            let m = try StoragePreflight.measure(on: f.db)
            #expect(m.readings == 100_800)
            let (bytes, source) = StoragePreflight.bytesPerReading(m, fallback: 1)
            #expect(source == "measured on 100800 readings")
            // Table, indexes and (not yet refreshed) view: the same order as the calibrated default.
            #expect(bytes > 60 && bytes < 400, "\(bytes) bytes per reading")
        }
    }

    /// `bems-load` runs the pre-flight: exit 75 with the numbers and the options, nothing loaded, a failure report;
    /// `--force` loads and reports the size after.
    @Test func theLoadCommandRefusesAndForceLoads() async throws {
        let executable = Self.root + "/.build/debug/bems-load"
        try #require(FileManager.default.isExecutableFile(atPath: executable), "build bems-load first")
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 60))
            let config = f.workRoot + "-pipeline.json"
            try AtomicFile.write(Array(#"{"environments": {"dev": {"storageLimitMB": 1}}}"#.utf8), to: config)
            defer { try? FileManager.default.removeItem(atPath: config) }
            func load(_ extra: [String]) throws -> (Int32, String) {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: executable)
                p.arguments =
                    ["--config", config, "--work-dir", f.workRoot, "--ledger-schema", f.schema, "--env", "dev"] + extra
                var env = ProcessInfo.processInfo.environment
                env["BEMS_DEV_DATABASE_URL"] = f.target.conninfo
                env["SENTRY_DSN"] = nil
                env["BEMS_ALERT_WEBHOOK_URL"] = nil
                p.environment = env
                let err = Pipe()
                p.standardError = err
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                return (p.terminationStatus, text)
            }
            let (refused, message) = try load([])
            #expect(refused == 75, "\(message)")
            #expect(message.contains("storage pre-flight (dev)") && message.contains("of the 1.0 MB limit"))
            #expect(message.contains("--force"))
            #expect(((try? f.count("SELECT count(*) FROM sensor_readings")) ?? 0) == 0)
            #expect(f.work.runIDs(.load).isEmpty)
            let failedRun = try #require(f.work.failedRunIDs(.load).last)
            let failure = try AtomicFile.readJSON(
                RunReport.self, from: f.work.failedRunDirectory(.load, failedRun) + "/run-report.json")
            #expect(failure.failure?.code == "over_limit" && failure.failure?.operation == "storage")

            let (forced, output) = try load(["--force"])
            #expect(forced == 0, "\(output)")
            #expect(output.contains("--force was given, loading anyway"))
            #expect(output.contains("storage (dev): database") && output.contains("of the 1.0 MB limit"))
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == 2 * 3 * 60)
            let run = try #require(f.work.currentRunID(.load))
            let report = try AtomicFile.readJSON(
                RunReport.self, from: f.work.runDirectory(.load, run) + "/run-report.json")
            #expect(report.status == .succeeded && report.storage?.verdict == .forced)
            #expect(report.storage?.databaseBytesAfter != nil)
            #expect(report.alerts.contains { $0.kind == "storage" })
            #expect(report.chunks?.count == report.figures["chunksLoaded"])
            let metrics = try String(contentsOfFile: f.workRoot + "/metrics/bems_load.prom", encoding: .utf8)
            #expect(metrics.contains(#"bems_storage_limit_bytes{env="dev",stage="load"} 1048576.0"#))
        }
    }
}
