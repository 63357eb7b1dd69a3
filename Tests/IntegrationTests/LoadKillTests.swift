import Foundation
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// SIGKILLs the real `bems-load` executable in the middle of a load, then reruns it.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(10)))
struct LoadKillTests {
    /// `.build/debug/bems-load` next to this package (built by `swift build` / `swift test`).
    static let executable: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/debug/bems-load").path
    }()

    /// The config file of a rate-limited loader, next to the fixture's work dir.
    static func configPath(_ f: LoadFixture) -> String { f.workRoot + "-pipeline.json" }

    /// Runs the loader; `rowsPerSecond` caps it through a config of its own (the rest of the settings default).
    func runLoader(_ f: LoadFixture, rowsPerSecond: Int? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.executable)
        p.arguments = ["--work-dir", f.workRoot, "--ledger-schema", f.schema, "--env", "dev", "--log-level", "warning"]
        if let rowsPerSecond {
            let config = Self.configPath(f)
            try AtomicFile.write(
                Array(#"{"environments": {"dev": {"rateLimit": {"rowsPerSecond": \#(rowsPerSecond)}}}}"#.utf8),
                to: config)
            p.arguments! += ["--config", config]
        }
        var env = ProcessInfo.processInfo.environment
        env["BEMS_DEV_DATABASE_URL"] = f.target.conninfo
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test func killedLoaderRerunGivesExactlyTheExpectedContent() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable), "build bems-load first")
        try await ExclusiveLoadTests.shared.run { try await killedLoaderRerun() }
    }

    func killedLoaderRerun() async throws {
        try await withLoadFixture { f in
            // 7 floors x 8 sensors x 5 days of minutes: ~400 k readings, 35 chunks.
            try f.publishDedupe(LoadFixture.readings(floors: 1...7, sensorsPerFloor: 8, minutes: 5 * 1440))
            let chunks = try f.work.currentManifest(.dedupe)!.chunks.count

            // Rate-limited to ~10 s, so that the kill lands mid-run even when the whole suite loads the machine (at
            // full speed the loader sometimes finished before the first poll saw a quarter of the chunks committed).
            let process = try runLoader(f, rowsPerSecond: 40_000)
            defer { try? FileManager.default.removeItem(atPath: Self.configPath(f)) }
            // Kill it once some, but not all, chunks are committed.
            var committed = 0
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, process.isRunning {
                committed =
                    (try? f.count(
                        "SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")) ?? 0
                if committed >= max(3, chunks / 4) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            try #require(process.isRunning, "the loader finished before it could be killed; use a bigger dataset")
            // Kill at once: with parallel workers the next chunks are mid-transaction now, and a quarter of the run
            // leaves a wide margin before the last chunk even on a loaded machine.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            let partial = try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")
            // Usually some chunks are still pending; on a heavily loaded machine a slow poll can let every chunk commit
            // first, and the kill then lands in the index rebuild or verify. Both must converge on rerun.
            #expect(partial > 0 && partial <= chunks)
            // Whatever is in the table is exactly the committed chunks' readings.
            #expect(
                try f.count("SELECT count(*) FROM sensor_readings")
                    == f.count("SELECT coalesce(sum(inserted), 0) FROM loaded_chunks WHERE status = 'committed'"))

            // Rerun with the same executable: finishes the rest.
            let rerun = try runLoader(f)
            rerun.waitUntilExit()
            #expect(rerun.terminationStatus == 0)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(
                try f.count(
                    "SELECT count(*) FROM (SELECT 1 FROM sensor_readings GROUP BY sensor_id, \"timestamp\" HAVING count(*) > 1) d"
                ) == 0)
            #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == chunks)
            #expect(
                try f.count("SELECT count(DISTINCT chunk_name) FROM loaded_chunks WHERE status = 'committed'") == chunks
            )
            #expect(try f.verify().passed)
            // The first load dropped the secondary indexes; the rerun's setup recreated them.
            #expect(try f.secondaryIndexCount() == 1)
            #expect(try f.uniqueKeyExists() && f.primaryKeyExists())
        }
    }
}
