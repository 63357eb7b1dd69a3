import Foundation
import Logging
import Testing

@testable import BEMSCore

/// Connection pool limits and rate limiting against real servers: a server with a low `max_connections` and
/// connections held open elsewhere, and a 50 000 rows/s cap.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .serialized, .timeLimit(.minutes(5)))
struct ConnectionLimitTests {
    /// Client backends on the server, sampled every 20 ms while `body` runs; returns the most seen.
    static func peakConnections(url: String, during body: () async throws -> Void) async throws -> Int {
        let state = Shared()
        let ready = Shared()
        let thread = Thread {
            guard let monitor = try? PGConnection(conninfo: url) else { return }
            ready.set(1)
            while state.get() >= 0 {
                if let n = try? monitor.exec(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                ).scalarInt64() {
                    state.raise(Int(n))
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        thread.start()
        while ready.get() == 0 { try await Task.sleep(for: .milliseconds(10)) }
        var peak = 0
        do {
            try await body()
        } catch {
            state.set(-1)
            throw error
        }
        peak = state.get()
        state.set(-1)
        try await Task.sleep(for: .milliseconds(100))
        return peak
    }

    /// A throwaway server with `max_connections = 20` on `port`, an admin connection whose `search_path` is a new
    /// schema, and a load fixture on it; the server is stopped and removed after `body`.
    static func withSmallServer(
        port: Int, schema: String, _ body: (EmbeddedPostgres, PGConnection, LoadFixture) async throws -> Void
    ) async throws {
        let dir = "/tmp/bems-cap-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let server = EmbeddedPostgres(directory: dir, port: port)
        defer {
            try? server.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        try server.start()
        try PGConnection(conninfo: server.url).exec("ALTER SYSTEM SET max_connections = 20")
        try server.stop()
        try server.start()
        let admin = try PGConnection(conninfo: server.url)
        #expect(try admin.exec("SHOW max_connections").scalar() == "20")
        try admin.exec("CREATE SCHEMA \(schema)")
        try admin.exec("SET search_path TO \(schema)")
        try await body(server, admin, try LoadFixture(db: admin, schema: schema, url: server.url))
    }

    @Test func aLowMaxConnectionsServerWithBusyConnectionsStaysUnder80Percent() async throws {
        try await ExclusiveLoadTests.shared.run {
            try await Self.withSmallServer(port: 54_363, schema: "t_cap") { server, admin, f in
                // Connections held open elsewhere: 7, besides the admin, monitor and load sessions.
                let held = try (0..<7).map { _ in try PGConnection(conninfo: server.url) }
                try f.publishDedupe(LoadFixture.readings(floors: 1...7, sensorsPerFloor: 4, minutes: 2 * 1440))
                var options = f.loadOptions()
                options.workers = 12
                var result: LoadStage.Result?
                let peak = try await Self.peakConnections(url: server.url) {
                    result = try await LoadStage.run(options, logger: f.logger)
            }
            let r = try #require(result)
            #expect(r.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
            // 7 held + admin + monitor + the load's own session = 10 in use: room for 16 - 10 = 6 workers.
            #expect(r.workers == 6)
            #expect(peak <= 16, "peak \(peak) client connections of max_connections 20")
            withExtendedLifetime(held) {}
            }
        }
    }

    @Test func atTheLimitTheLoadWaitsForRoom() async throws {
        try await ExclusiveLoadTests.shared.run {
            try await Self.withSmallServer(port: 54_364, schema: "t_wait") { server, _, f in
                try f.publishDedupe(LoadFixture.readings(floors: 1...2, sensorsPerFloor: 2, minutes: 1440))
                // 14 held + admin + the load's session = 16: no room for a worker until some are released.
                let held = Held(try (0..<14).map { _ in try PGConnection(conninfo: server.url) })
                let release = Thread {
                    Thread.sleep(forTimeInterval: 3)
                    held.release(4)
            }
            let started = Date()
            release.start()
            let r = try await LoadStage.run(f.loadOptions(), logger: f.logger)
            #expect(Date().timeIntervalSince(started) >= 2.9)
            #expect(r.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
            }
        }
    }

    @Test func aRowsPerSecondLimitHoldsWithinTenPercent() async throws {
        try await ExclusiveLoadTests.shared.run {
            try await withLoadFixture { f in
                try f.publishDedupe(LoadFixture.readings(floors: 1...3, sensorsPerFloor: 8, minutes: 5 * 1440))
                var options = f.loadOptions()
                options.config.environments["dev"]!.rateLimit.rowsPerSecond = 50_000
                let log = LogCapture()
                options.progress = StageProgress(stage: "load", mode: .log(every: 1), logger: log.logger())
                options.progress.start()
                let started = Date()
                let r = try await LoadStage.run(options, logger: log.logger())
                let seconds = Date().timeIntervalSince(started)
                options.progress.finish()
                let rate = Double(r.inserted) / seconds
                #expect(r.inserted == 172_800)
                #expect(r.throttledSeconds > 0)
                #expect(rate <= 55_000, "\(Int(rate)) rows/s against a cap of 50 000")
                #expect(r.manifest?.totals["throttledMilliseconds"] ?? 0 > 0)
                // The progress lines say the load is throttled.
                #expect(!log.entries("load progress: throttled by the rate limits").isEmpty)
                // The bandwidth figures: the peak rows/s at the cap, so the run raises a bandwidth warning.
                let bandwidth = BandwidthReport(limits: options.config.environments["dev"]!.rateLimit, progress: options.progress)
                #expect(bandwidth.rowsPerSecondLimit == 50_000 && bandwidth.bytesPerSecondLimit == nil)
                #expect((bandwidth.rowsShare ?? 0) >= 0.8 && (bandwidth.rowsShare ?? 9) <= 1.2, "\(bandwidth)")
                #expect(bandwidth.peakBytesPerSecond > 0 && bandwidth.throttledSeconds > 0)
                #expect(bandwidth.alerts(name: "load", share: 0.8).map(\.kind) == ["bandwidth"])
                #expect(options.progress.chunkSeconds.count == r.chunksLoaded)
                #expect(try f.tableContent() == f.expectedContent())
            }
        }
    }
}

/// An integer shared with a monitor thread.
final class Shared: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func get() -> Int { lock.withLock { value } }
    func set(_ v: Int) { lock.withLock { value = v } }
    func raise(_ v: Int) { lock.withLock { if value >= 0 { value = max(value, v) } } }
}

/// Connections held open by a test, released from another thread.
final class Held: @unchecked Sendable {
    private let lock = NSLock()
    private var connections: [PGConnection]
    init(_ connections: [PGConnection]) { self.connections = connections }
    func release(_ n: Int) { lock.withLock { connections.removeLast(n) } }
}
