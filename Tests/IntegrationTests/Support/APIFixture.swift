import BEMSServer
import Foundation
import Logging
import Testing

@testable import BEMSCore

/// An admin API server started in the test process on 127.0.0.1 and an ephemeral port, over a database of its own
/// (created on the test server, dropped by ``stop()``), a work dir and generated inputs (1 day of floors 1 and 2, each
/// file with one rejected line). Imports run the built stage executables (``PipelineHarness/binDirectory``).
final class APIFixture: @unchecked Sendable {
    // @unchecked: every stored property is a constant.
    let root: String
    let input: String
    let work: String
    let configPath: String
    /// The database the stages load into, and the connection string that reaches it.
    let databaseName: String
    let databaseURL: String
    /// The server the database lives on (to drop it).
    let adminURL: String
    let devToken = "dev-" + String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-token"
    let stagingToken = "staging-" + String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-token"
    /// Everything the server logged, from `trace` up.
    let capture = LogCapture()
    let server: AdminServer
    let running: AdminServer.Running

    var client: HTTPTestClient { HTTPTestClient(port: running.port) }

    /// Starts the server.
    ///
    /// - Parameters:
    ///   - url: The PostgreSQL server to create the database on (default: the test server).
    ///   - maxBodyBytes: `serve.maxBodyBytes`.
    ///   - requestLimit: `serve.requestsPerSecond` and `serve.requestBurst` (default: the configuration's).
    ///   - idleTimeoutSeconds: `serve.idleTimeoutSeconds` (default: the configuration's).
    init(
        url: String? = TestDatabase.url, maxBodyBytes: Int = 65_536, requestLimit: (rate: Double, burst: Int)? = nil,
        idleTimeoutSeconds: Double? = nil
    ) async throws {
        try PipelineHarness.requireExecutables()
        guard let url else { throw TestDatabase.MissingURL() }
        root = NSTemporaryDirectory() + "bems-api-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        input = root + "/in"
        work = root + "/work"
        configPath = root + "/pipeline.json"
        try AtomicFile.makeDirectory(input)
        try Self.generateInput(into: input)
        try AtomicFile.write(
            Array(
                """
                {"sources": ["\(input)"],
                 "environments": {"dev": {"retry": {"baseDelaySeconds": 0.2, "maxAttempts": 2, "budgetSeconds": 5,
                   "jitter": "none"}}},
                 "serve": {"maxBodyBytes": \(maxBodyBytes)\(requestLimit.map {
                    #", "requestsPerSecond": \#($0.rate), "requestBurst": \#($0.burst)"# } ?? "")\(idleTimeoutSeconds.map {
                    #", "idleTimeoutSeconds": \#($0)"# } ?? "")}}
                """.utf8), to: configPath)
        adminURL = url
        databaseName = "bems_api_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let admin = try PGConnection(conninfo: url)
        try admin.exec("CREATE DATABASE \(databaseName)")
        databaseURL = ConnectionString.adding("dbname", databaseName, to: url)

        var config = try PipelineConfig.load(path: configPath)
        config.workDir = work
        var variables = ProcessInfo.processInfo.environment
        variables["BEMS_DEV_DATABASE_URL"] = databaseURL
        variables["BEMS_DEV_SERVICE_TOKEN"] = devToken
        variables["BEMS_STAGING_SERVICE_TOKEN"] = stagingToken
        variables["BEMS_STAGING_DATABASE_URL"] = nil
        variables["BEMS_PROD_SERVICE_TOKEN"] = nil
        var settings = AdminServer.Settings(
            config: config, env: "dev",
            variables: Dictionary(uniqueKeysWithValues: config.environments.keys.map { ($0, variables) }),
            configPath: configPath, binDirectory: PipelineHarness.binDirectory)
        // Loopback and a port the kernel picks.
        settings.host = "127.0.0.1"
        settings.port = 0
        server = AdminServer(settings: settings, logger: capture.logger(level: .trace))
        running = try await server.start()
    }

    /// Stops the server, waits for a running import, drops the database and removes the folder.
    func stop() async {
        await running.stop()
        let supervisor = server.supervisor
        _ = try? await runBlocking { supervisor.waitUntilIdle(timeout: 180) }
        if let admin = try? PGConnection(conninfo: adminURL) {
            _ = try? admin.exec("DROP DATABASE IF EXISTS \(databaseName) WITH (FORCE)")
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs `body` on the fixture, then stops it whether `body` threw or not.
    func use<R>(_ body: (APIFixture) async throws -> R) async throws -> R {
        do {
            let result = try await body(self)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// A connection to the fixture's database.
    func connect() throws -> PGConnection { try PGConnection(conninfo: databaseURL) }

    /// Generated CSV files: 1 day of floors 1 and 2, each with one line of too few fields at the end (a rejected
    /// record within the default threshold).
    static func generateInput(into folder: String) throws {
        let configuration = SampleConfiguration(
            start: CivilDate(year: 2019, month: 3, day: 4)!, days: 1, floors: [1, 2], seed: 11)
        let summary = try SampleGenerator(configuration: configuration).write(toDirectory: folder)
        for file in summary.files {
            guard let handle = FileHandle(forWritingAtPath: folder + "/" + file.name) else {
                throw PipelineError.io("\(folder)/\(file.name): cannot open")
            }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("2019-03-04 23:59:30,1.5,2\n".utf8))
            try handle.close()
        }
    }

    /// Polls `GET /admin/import/status/{id}` until the import ends; returns its record and every state seen.
    func waitForImport(_ id: String, timeout: Double = 180) async throws -> (ImportRecord, [String]) {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [String] = []
        while true {
            let answer = try await client.send("GET", "/admin/import/status/\(id)", token: devToken)
            try #require(answer.status == 200, "\(answer)")
            let record = try answer.decode(ImportRecord.self)
            let state = record.state.rawValue + "/" + (record.currentStage?.rawValue ?? "-")
            if seen.last != state { seen.append(state) }
            if record.isFinished { return (record, seen) }
            try #require(Date() < deadline, "import \(id) did not finish in \(timeout) s: \(seen)")
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Every line the server logged and every byte of the work dir's text files (stage logs, records, reports).
    func everythingWritten() -> String {
        var text = capture.lines(atLeast: .trace).joined(separator: "\n")
        if let walker = FileManager.default.enumerator(atPath: work) {
            for case let path as String in walker where !path.hasSuffix(".bemc") && !path.hasPrefix("pg/") {
                if let data = FileManager.default.contents(atPath: work + "/" + path) {
                    text += "\n" + String(decoding: data, as: UTF8.self)
                }
            }
        }
        return text
    }
}
