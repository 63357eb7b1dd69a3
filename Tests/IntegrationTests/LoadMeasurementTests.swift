import Foundation
import Testing

@testable import BEMSCore

/// Timings of a realistic load with the release `bems-load` (BEMS_LOAD_BENCH=1; BEMS_LOAD_BENCH_DAYS, default 7;
/// BEMS_LOAD_BIN, default `.build/release/bems-load`). Prints its figures; asserts only correctness.
@Suite(
    .enabled(if: TestDatabase.isEnabled && ProcessInfo.processInfo.environment["BEMS_LOAD_BENCH"] == "1"),
    .serialized, .timeLimit(.minutes(60)))
struct LoadMeasurementTests {
    static let env = ProcessInfo.processInfo.environment
    static let days = Int(env["BEMS_LOAD_BENCH_DAYS"] ?? "") ?? 7
    static let binary: String =
        env["BEMS_LOAD_BIN"]
        ?? {
            var url = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { url.deleteLastPathComponent() }
            return url.appendingPathComponent(".build/release/bems-load").path
        }()

    func runBinary(_ f: LoadFixture, extra: [String] = []) throws -> (status: Int32, seconds: Double) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments =
            [
                "--work-dir", f.workRoot, "--ledger-schema", f.schema, "--log-level",
                Self.env["BEMS_LOAD_BENCH_LOG"] ?? "notice",
            ] + extra
        var env = ProcessInfo.processInfo.environment
        env["BEMS_DEV_DATABASE_URL"] = f.target.conninfo
        p.environment = env
        let t0 = Date()
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, Date().timeIntervalSince(t0))
    }

    func timed<R>(_ body: () throws -> R) rethrows -> (R, Double) {
        let t0 = Date()
        let r = try body()
        return (r, Date().timeIntervalSince(t0))
    }

    @Test(arguments: [false, true])
    func loadFloorsForDays(dropIndexesFirst: Bool) async throws {
        try await withLoadFixture { f in
            let readings = LoadFixture.readings(floors: 1...7, sensorsPerFloor: 33, minutes: Self.days * 1440)
            let (_, gen) = try timed { try f.publishDedupe(readings) }
            print("bench: \(readings.count) readings, dedupe run written in \(String(format: "%.1f", gen)) s")
            let (status, seconds) = try runBinary(f, extra: dropIndexesFirst ? [] : ["--keep-indexes"])
            #expect(status == 0)
            #expect(try f.secondaryIndexCount() == 1)
            let manifest = try #require(try f.work.currentManifest(.load))
            let verify = try AtomicFile.readJSON(
                VerifyReport.self, from: f.work.runDirectory(.load, manifest.runID) + "/verify.json")
            #expect(verify.passed)
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == readings.count)
            let (_, rerun) = try timed { _ = try runBinary(f) }
            let (rb, rollback) = try timed { try f.rollback() }
            #expect(rb.deleted == readings.count)
            print(
                "bench: indexes \(dropIndexesFirst ? "dropped, rebuilt after (included)" : "kept"): load+verify "
                    + "\(String(format: "%.1f", seconds)) s (\(Int(Double(readings.count) / seconds)) readings/s), "
                    + "verify \(String(format: "%.1f", verify.seconds)) s, "
                    + "slowest chunk \(manifest.totals["maxChunkMilliseconds"] ?? -1) ms, "
                    + "up-to-date rerun \(String(format: "%.2f", rerun)) s, rollback \(String(format: "%.1f", rollback)) s"
            )
        }
    }
}
