import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// Real faults during a load: backends terminated mid-COPY, and the server stopped and started again.
///
/// `.serialized`, and the synchronous load runs on its own thread: the 2-core machine's cooperative pool has two
/// threads, and blocking them starves the polling loops of other suites (``LoadKillTests``).
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct FaultInjectionTests {
    /// The package root (this file is `Tests/IntegrationTests/FaultInjectionTests.swift`).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Checks the final state: exact content, every chunk committed exactly once, verify passes.
    func expectExactlyLoaded(_ f: LoadFixture, chunks: Int) throws {
        #expect(try f.tableContent() == f.expectedContent())
        #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == chunks)
        #expect(
            try f.count("SELECT count(DISTINCT chunk_name) FROM loaded_chunks WHERE status = 'committed'") == chunks)
        #expect(
            try f.count(
                "SELECT count(*) FROM (SELECT 1 FROM sensor_readings GROUP BY sensor_id, \"timestamp\" HAVING count(*) > 1) d"
            ) == 0)
        #expect(try f.verify().passed)
    }

    // MARK: - Backends terminated mid-COPY

    @Test func backendsKilledMidCopyAreRetriedOnNewConnections() async throws {
        try await ExclusiveLoadTests.shared.run { try await backendsKilledMidCopy() }
    }

    func backendsKilledMidCopy() async throws {
        try await withLoadFixture { f in
            // 7 floors x 8 sensors x 3 days of minutes: ~240 k readings, 28 chunks (the days straddle 4 UTC days).
            try f.publishDedupe(LoadFixture.readings(floors: 1...7, sensorsPerFloor: 8, minutes: 3 * 1440))
            let chunks = try f.work.currentManifest(.dedupe)!.chunks.count
            // Our load's sessions carry their own application_name, so the killer never hits other tests' COPYs.
            let application = "bems_fault_" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            var options = f.loadOptions()
            options.database.conninfo += "&application_name=" + application
            options.database.retry = RetryPolicy(baseDelay: 0.2, maxAttempts: 6, budget: 20, jitter: .none)
            options.workers = 2

            let killer = BackendKiller(conninfo: TestDatabase.url!, application: application, limit: 3)
            killer.start()
            // The load blocks its thread for seconds: run it on its own, not on the tests' cooperative pool.
            let logger = f.logger
            let loadOptions = options
            let result = try await onOwnThread { try LoadStage.runLoading(loadOptions, logger: logger) }
            killer.stop()

            #expect(killer.failure == nil)
            try #require(killer.killed >= 1, "no COPY was caught in flight; use a bigger dataset")
            #expect(result.exitStatus == .ok)
            #expect(result.verify?.passed == true)
            #expect(result.chunksLoaded == chunks)
            #expect(result.inserted == f.model.count)
            try expectExactlyLoaded(f, chunks: chunks)
            Logger(label: "test.fault").notice(
                "backends terminated mid-COPY",
                metadata: ["killed": "\(killer.killed)", "chunks": "\(chunks)", "rows": "\(result.inserted)"])
        }
    }

    // MARK: - Server stopped and started

    @Test func startRestartsAServerWhoseSocketWasDeleted() throws {
        let server = try ThrowawayServer()
        defer { server.remove() }
        let url = try server.url()
        #expect(try PGConnection(conninfo: url).exec("SELECT 1").scalar() == "1")
        try FileManager.default.removeItem(atPath: server.directory + "/.s.PGSQL.\(server.port)")
        // The postmaster still runs, but nobody can reach it.
        #expect(throws: PostgresError.self) { try PGConnection(conninfo: url) }
        try server.start()
        #expect(try PGConnection(conninfo: url).exec("SELECT 1").scalar() == "1")
    }

    @Test func serverRestartMidLoadEndsWithExactlyTheExpectedContent() async throws {
        try await ExclusiveLoadTests.shared.run { try await serverRestartMidLoad() }
    }

    func serverRestartMidLoad() async throws {
        let executable = Self.root + "/.build/debug/bems-load"
        try #require(FileManager.default.isExecutableFile(atPath: executable), "build bems-load first")
        let server = try ThrowawayServer()
        defer { server.remove() }
        let url = try server.url()
        let db = try PGConnection(conninfo: url)
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try db.exec("CREATE SCHEMA \(schema)")
        try db.exec("SET search_path TO \(schema)")
        let f = try LoadFixture(db: db, schema: schema, url: url)
        // 7 floors x 8 sensors x 4 days: ~320 k readings, 35 chunks. The loader is rate-limited (60 000 rows/s, ~5 s)
        // so the server stops mid-run even when the suite's load makes the first poll late.
        try f.publishDedupe(LoadFixture.readings(floors: 1...7, sensorsPerFloor: 8, minutes: 4 * 1440))
        let chunks = try f.work.currentManifest(.dedupe)!.chunks.count
        let config = server.directory + "-pipeline.json"
        try AtomicFile.write(
            Array(
                #"{"environments": {"dev": {"retry": {"baseDelaySeconds": 0.5, "maxAttempts": 8, "budgetSeconds": 20, "jitter": "none"}, "rateLimit": {"rowsPerSecond": 60000}}}}"#
                    .utf8), to: config)
        defer { try? FileManager.default.removeItem(atPath: config) }

        func runLoader() throws -> (ChildProcess, String) {
            let log = server.directory + "-load-\(UInt32.random(in: 0...UInt32.max)).log"
            var env = ProcessInfo.processInfo.environment
            env["BEMS_DEV_DATABASE_URL"] = f.target.conninfo
            let child = try ChildProcess(
                [
                    executable, "--config", config, "--work-dir", f.workRoot, "--ledger-schema", f.schema, "--env",
                    "dev", "--log-level", "warning",
                ], environment: env, output: "/dev/null", errors: log)
            return (child, log)
        }

        let (process, log) = try runLoader()
        defer { try? FileManager.default.removeItem(atPath: log) }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.poll() == nil {
            let committed = (try? f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")) ?? 0
            if committed >= 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require(process.poll() == nil, "the loader finished before the server stopped; use a bigger dataset")
        try server.stop()
        let stoppedAt = Date()
        try await Task.sleep(for: .seconds(3))
        try server.start()
        let downSeconds = Date().timeIntervalSince(stoppedAt)
        f.db = try PGConnection(conninfo: url)
        try f.db.exec("SET search_path TO \(schema)")

        let exitDeadline = Date().addingTimeInterval(60)
        var exitStatus = process.poll()
        while exitStatus == nil, Date() < exitDeadline {
            try await Task.sleep(for: .milliseconds(50))
            exitStatus = process.poll()
        }
        let firstExit = try #require(exitStatus, "the loader hung after the restart")
        let stderr = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(!stderr.contains("password") && !stderr.contains(server.directory + "&"))
        let committedBeforeRerun = try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'")
        if firstExit == 0 {
            #expect(stderr.contains("retrying"), "no retry was logged: \(stderr)")
        } else {
            // The lock session died with the server: a clean failure that names the cause and the remedy.
            #expect(firstExit == 69, "\(stderr)")
            #expect(stderr.contains("rerun bems-load"), "\(stderr)")
            #expect(
                try f.count("SELECT count(*) FROM sensor_readings")
                    == f.count("SELECT coalesce(sum(inserted), 0) FROM loaded_chunks WHERE status = 'committed'"))
            let (rerun, rerunLog) = try runLoader()
            defer { try? FileManager.default.removeItem(atPath: rerunLog) }
            var rerunExit = rerun.poll()
            while rerunExit == nil {
                try await Task.sleep(for: .milliseconds(50))
                rerunExit = rerun.poll()
            }
            #expect(
                rerunExit == 0, "\((try? String(contentsOfFile: rerunLog, encoding: .utf8)) ?? "")")
        }
        Logger(label: "test.fault").notice(
            "server restart",
            metadata: [
                "first.exit": "\(firstExit)", "down.seconds": "\(String(format: "%.1f", downSeconds))",
                "chunks": "\(chunks)", "chunks.committed.first": "\(committedBeforeRerun)",
            ])
        try expectExactlyLoaded(f, chunks: chunks)
        // The restart's partial first load is finished and the secondary indexes are back.
        #expect(try f.secondaryIndexCount() == 1)
        #expect(try f.uniqueKeyExists() && f.primaryKeyExists())
    }
}

/// Terminates the COPY backends of one application name from its own thread until `limit` were killed.
final class BackendKiller: @unchecked Sendable {
    // @unchecked: the mutable fields are read and written under `lock`.
    private let lock = NSLock()
    private var _killed = 0
    private var _stopped = false
    private var _failure: String?
    private let done = DispatchSemaphore(value: 0)
    let conninfo: String
    let application: String
    let limit: Int

    init(conninfo: String, application: String, limit: Int) {
        self.conninfo = conninfo
        self.application = application
        self.limit = limit
    }

    var killed: Int { lock.withLock { _killed } }
    var failure: String? { lock.withLock { _failure } }

    func start() {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            do {
                let db = try PGConnection(conninfo: conninfo)
                while lock.withLock({ !_stopped && _killed < limit }) {
                    let n =
                        try db.exec(
                            """
                            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                            WHERE query ILIKE 'COPY%' AND state = 'active' AND application_name = $1
                              AND pid <> pg_backend_pid()
                            """, parameters: [application]
                        ).scalarInt64() ?? 0
                    if n > 0 { lock.withLock { _killed += Int(n) } }
                    usleep(1000)
                }
            } catch {
                lock.withLock { _failure = "\(error)" }
            }
        }
    }

    func stop() {
        lock.withLock { _stopped = true }
        done.wait()
    }
}

/// A PostgreSQL of its own (`stages/pg-embedded.sh`), so a test can stop and start it.
final class ThrowawayServer {
    let directory: String
    let port: Int

    init() throws {
        directory = NSTemporaryDirectory() + "bems-fault-pg-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        // Unix socket only, in its own folder, so the port cannot clash with another server's socket.
        port = Int.random(in: 54_500...54_599)
        try start()
    }

    func start() throws { _ = try Self.script(["start", directory, String(port)]) }
    func stop() throws { _ = try Self.script(["stop", directory]) }
    func url() throws -> String {
        try Self.script(["url", directory]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func remove() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func script(_ arguments: [String]) throws -> String {
        // Output goes to a file, not a pipe: the server that `start` launches inherits it and never closes it.
        let outPath = NSTemporaryDirectory() + "bems-pg-script-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let child = try ChildProcess(
            ["/bin/bash", FaultInjectionTests.root + "/stages/pg-embedded.sh"] + arguments,
            environment: ProcessInfo.processInfo.environment, output: outPath, errors: "/dev/null")
        guard child.wait() == 0 else {
            throw PipelineError(.unavailable, "pg-embedded.sh \(arguments.joined(separator: " ")) failed")
        }
        let data = FileManager.default.contents(atPath: outPath) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Not Foundation's `Process`: its exit monitoring missed the exit of `pg-embedded.sh start` (the child stayed a
/// zombie and `waitUntilExit` never returned), likely because the server it launches outlives it.
final class ChildProcess {
    let pid: pid_t
    private var status: Int32?

    init(_ arguments: [String], environment: [String: String], output: String, errors: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard rc == 0 else { throw PipelineError(.unexpected, "posix_spawn \(arguments[0]) failed: \(rc)") }
        self.pid = pid
    }

    /// The exit status (128 + signal when killed), or `nil` while it runs.
    func poll() -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        status = Self.decode(raw)
        return status
    }

    /// Waits for the exit and returns its status.
    func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1, errno == EINTR {}
        status = Self.decode(raw)
        return status!
    }

    private static func decode(_ raw: Int32) -> Int32 {
        (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }
}

/// Runs `body` on a new thread and waits for it without holding a thread of the cooperative pool.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
