import Foundation
import Logging
import Testing

@testable import BEMSCore

/// A chunk whose COMMIT succeeded but whose acknowledgement never arrived is counted from the ledger, not loaded
/// twice. The fault is real: the loader talks to PostgreSQL through a ``FaultProxy`` that forwards the `COMMIT` of
/// one chunk, waits for the server's answer, swallows it and drops the connection.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct LostCommitTests {
    /// The test server as the proxy's upstream, with its user and database, from `BEMS_TEST_DATABASE_URL` (a
    /// `postgresql://` URI or a keyword/value string without quoted values).
    static func upstream() throws -> (FaultProxy.Upstream, user: String, database: String) {
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        var settings: [String: String] = [:]
        if let parts = URLComponents(string: url), parts.scheme?.hasPrefix("postgres") == true {
            settings["host"] = parts.host
            settings["port"] = parts.port.map(String.init)
            settings["user"] = parts.user
            settings["dbname"] = parts.path.isEmpty ? nil : String(parts.path.dropFirst())
            for item in parts.queryItems ?? [] { settings[item.name] = item.value }
        } else {
            for pair in url.split(separator: " ") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { settings[kv[0]] = kv[1] }
            }
        }
        let host = settings["host"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/run/postgresql"
        let port = UInt16(settings["port"] ?? "5432") ?? 5432
        let user = settings["user"] ?? "postgres"
        let database = settings["dbname"].flatMap { $0.isEmpty ? nil : $0 } ?? user
        let upstream: FaultProxy.Upstream =
            host.hasPrefix("/")
            ? .unixSocket("\(host)/.s.PGSQL.\(port)")
            : .tcp(host: host == "localhost" ? "127.0.0.1" : host, port: port)
        return (upstream, user, database)
    }

    @Test func aCommitWhoseAcknowledgementIsLostIsNotLoadedTwice() async throws {
        try await ExclusiveLoadTests.shared.run { try await lostAcknowledgement() }
    }

    func lostAcknowledgement() async throws {
        try await withLoadFixture { direct in
            // 3 floors x 8 sensors x 2 days: 9 chunks. The proxy cuts the 3rd chunk COMMIT it sees.
            try direct.publishDedupe(LoadFixture.readings(floors: 1...3, sensorsPerFloor: 8, minutes: 2 * 1440))
            let chunks = try #require(try direct.work.currentManifest(.dedupe)).chunks.count
            let rule = CommitCutter(cutAt: 3)
            let (upstream, user, database) = try Self.upstream()
            let proxy = try FaultProxy(upstream: upstream) { connection, query in
                rule.decide(connection: connection, query: query)
            }
            defer { proxy.stop() }
            // The loader's every session goes through the proxy; the fixture's own connection does not.
            let proxied = try LoadFixture(
                db: direct.db, schema: direct.schema,
                url: proxy.conninfo(user: user, database: database))
            var options = direct.loadOptions()
            options.database = proxied.target
            options.database.retry = RetryPolicy(baseDelay: 0.1, maxAttempts: 4, budget: 10, jitter: .none)
            options.workers = 2
            let capture = LogCapture()
            let logger = capture.logger()
            let loadOptions = options
            let result = try await onOwnThread { try LoadStage.runLoading(loadOptions, logger: logger) }

            #expect(proxy.cuts == 1)
            let lost = capture.entries(
                "chunk was already committed; its acknowledgement was lost, it is not loaded again")
            try #require(lost.count == 1, "\(capture.lines())")
            let chunk = try #require(lost.first?["chunk"]).description
            #expect(result.exitStatus == .ok && result.verify?.passed == true)
            #expect(result.chunksLoaded == chunks && result.pieces == chunks)
            #expect(result.inserted == direct.model.count)
            #expect(capture.entries("transient database error, retrying").count == 1)
            #expect(
                try direct.db.exec(
                    "SELECT count(*) FROM loaded_chunks WHERE chunk_name = $1", parameters: [chunk]
                ).scalarInt64() == 1)
            #expect(try direct.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == chunks)
            #expect(
                try direct.count(
                    "SELECT count(*) FROM (SELECT 1 FROM sensor_readings GROUP BY sensor_id, \"timestamp\" HAVING count(*) > 1) d"
                ) == 0)
            #expect(try direct.tableContent() == direct.expectedContent())
            #expect(try direct.verify().passed)
            Logger(label: "test.proxy").notice(
                "COMMIT acknowledgement lost",
                metadata: [
                    "chunk": "\(chunk)", "proxy.connections": "\(proxy.connections)", "chunks": "\(chunks)",
                ])
        }
    }
}

/// The proxy rule: cut after the server answers the `cutAt`-th `COMMIT` sent on a connection that ran a COPY (a
/// chunk's transaction; setup and ledger sessions do not COPY).
final class CommitCutter: @unchecked Sendable {
    // @unchecked: the mutable fields are read and written under `lock`.
    private let lock = NSLock()
    private var copying = Set<Int>()
    private var commits = 0
    let cutAt: Int

    init(cutAt: Int) { self.cutAt = cutAt }

    func decide(connection: Int, query: String) -> Bool {
        let text = query.drop { $0 == " " || $0 == "\n" || $0 == "\t" }.uppercased()
        return lock.withLock {
            if text.hasPrefix("COPY") { copying.insert(connection) }
            guard text.hasPrefix("COMMIT"), copying.contains(connection) else { return false }
            commits += 1
            return commits == cutAt
        }
    }
}
