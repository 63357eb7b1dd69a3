import BEMSServer
import Foundation
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// `bems-serve` and `bems serve` as an operator runs them: the listening line, a real request, SIGTERM, and the exit
/// codes of a missing token and a port in use.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(3)))
struct ServeCommandTests {
    /// A started server process and the port it printed.
    struct Served {
        var child: ChildProcess
        var port: Int
        var stdout: String
        var stderr: String
    }

    let root = NSTemporaryDirectory() + "bems-serve-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let token = "serve-test-token-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)

    func environment(token: String?, url: String? = TestDatabase.url) throws -> [String: String] {
        guard let url else { throw TestDatabase.MissingURL() }
        var env = ProcessInfo.processInfo.environment
        env["BEMS_DEV_DATABASE_URL"] = url
        env["BEMS_DEV_SERVICE_TOKEN"] = token
        return env
    }

    /// Starts `command` and waits for its "listening on" line (or its exit).
    func serve(_ command: [String], token: String?, url: String? = TestDatabase.url) throws -> (
        ChildProcess, String, String
    ) {
        try AtomicFile.makeDirectory(root)
        let out = root + "/out-\(UInt32.random(in: 0...UInt32.max))"
        let err = out + ".err"
        let child = try ChildProcess(
            command, environment: try environment(token: token, url: url), output: out, errors: err)
        return (child, out, err)
    }

    func waitForPort(_ child: ChildProcess, _ out: String) throws -> Int? {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, child.poll() == nil {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://127.0.0.1:") }),
                let port = Int(line.split(separator: ":").last ?? "")
            {
                return port
            }
            usleep(50_000)
        }
        return nil
    }

    func arguments(_ tool: String) -> [String] {
        [PipelineHarness.binDirectory + "/" + tool] + (tool == "bems" ? ["serve"] : [])
            + ["--port", "0", "--work-dir", root + "/work", "--log-level", "info"]
    }

    @Test func servesUntilSIGTERMAndExitsWithTheDocumentedCodes() async throws {
        try PipelineHarness.requireExecutables()
        try #require(FileManager.default.isExecutableFile(atPath: PipelineHarness.binDirectory + "/bems-serve"))
        defer { try? FileManager.default.removeItem(atPath: root) }

        // No token for --env: 64, and the message names the variable.
        let (noToken, _, noTokenErr) = try serve(arguments("bems-serve"), token: nil)
        #expect(noToken.wait() == 64)
        let message = (try? String(contentsOfFile: noTokenErr, encoding: .utf8)) ?? ""
        #expect(message.contains("BEMS_DEV_SERVICE_TOKEN is not set"), "\(message)")

        for tool in ["bems-serve", "bems"] {
            let (child, out, err) = try serve(arguments(tool), token: token)
            let port = try #require(try waitForPort(child, out), "\(tool) did not listen")
            defer { if child.poll() == nil { kill(child.pid, SIGKILL); _ = child.wait() } }
            let client = HTTPTestClient(port: port)
            let health = try await client.send("GET", "/healthz")
            #expect(health.status == 200, "\(health)")
            #expect(try health.json()["database"] as? String == "up", "\(health)")
            let status = try await client.send("GET", "/admin/import/status", token: token)
            #expect(status.status == 200, "\(status)")

            // A second server on the same port: 73.
            var busy = arguments("bems-serve")
            busy[busy.firstIndex(of: "0")!] = String(port)
            let (second, _, secondErr) = try serve(busy, token: token)
            #expect(second.wait() == 73)
            #expect(((try? String(contentsOfFile: secondErr, encoding: .utf8)) ?? "").contains("in use"))

            kill(child.pid, SIGTERM)
            var exit: Int32?
            let deadline = Date().addingTimeInterval(20)
            while exit == nil, Date() < deadline {
                exit = child.poll()
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(exit == 0, "\(tool)")
            let log = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            #expect(log.contains("server stopped"), "\(log)")
            #expect(!log.contains(token))
        }
    }

    @Test func sigtermDuringAnImportStopsItsStageAndTheImportReadsInterrupted() async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run { try await interruptedImport() }
    }

    func interruptedImport() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        let database = "bems_serve_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let admin = try PGConnection(conninfo: url)
        try admin.exec("CREATE DATABASE \(database)")
        defer { _ = try? admin.exec("DROP DATABASE IF EXISTS \(database) WITH (FORCE)") }
        try AtomicFile.makeDirectory(root + "/in")
        try APIFixture.generateInput(into: root + "/in")
        let config = root + "/pipeline.json"
        try AtomicFile.write(Array(#"{"sources": ["\#(root)/in"]}"#.utf8), to: config)

        let (child, out, err) = try serve(
            arguments("bems-serve") + ["--config", config], token: token,
            url: ConnectionString.adding("dbname", database, to: url))
        let port = try #require(try waitForPort(child, out), "bems-serve did not listen")
        defer { if child.poll() == nil { kill(child.pid, SIGKILL); _ = child.wait() } }
        let client = HTTPTestClient(port: port)
        let started = try await client.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
        #expect(started.status == 202, "\(started)")
        let id = try started.decode(ImportRecord.self).id
        // Stop it once a stage runs.
        let runningDeadline = Date().addingTimeInterval(30)
        while Date() < runningDeadline {
            // Polled faster than the request limit refills (10/s): a 429 is only a missed look.
            let answer = try await client.send("GET", "/admin/import/status/\(id)", token: token)
            if answer.status == 200, let r = try? answer.decode(ImportRecord.self),
                r.steps.contains(where: { $0.state == .running }) || r.isFinished
            {
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(child.pid, SIGTERM)
        var exit: Int32?
        let deadline = Date().addingTimeInterval(30)
        while exit == nil, Date() < deadline {
            exit = child.poll()
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(exit == 0, "\(log)")
        let record = try AtomicFile.readJSON(ImportRecord.self, from: root + "/work/serve/imports/\(id).json")
        #expect(record.state == .interrupted, "\(record)")
        #expect(record.error?.hasPrefix("the server stopped while the import ran") == true, "\(record.error ?? "")")
        #expect(record.finishedAt != nil)
        #expect(!record.steps.contains { $0.state == .running || $0.state == .pending })
        #expect(record.steps.contains { $0.state == .interrupted || $0.state == .skipped })

        // A new server on the same work dir finishes the pipeline.
        let (again, againOut, _) = try serve(
            arguments("bems-serve") + ["--config", config], token: token,
            url: ConnectionString.adding("dbname", database, to: url))
        let againPort = try #require(try waitForPort(again, againOut), "bems-serve did not listen")
        defer { if again.poll() == nil { kill(again.pid, SIGKILL); _ = again.wait() } }
        let second = HTTPTestClient(port: againPort)
        let old = try await second.send("GET", "/admin/import/status/\(id)", token: token)
        #expect(try old.decode(ImportRecord.self).state == .interrupted)
        let rerun = try await second.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
        #expect(rerun.status == 202, "\(rerun)")
        let rerunID = try rerun.decode(ImportRecord.self).id
        var final: ImportRecord?
        let rerunDeadline = Date().addingTimeInterval(120)
        while Date() < rerunDeadline {
            let r = try await second.send("GET", "/admin/import/status/\(rerunID)", token: token).decode(ImportRecord.self)
            if r.isFinished {
                final = r
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(final?.state == .succeeded, "\(String(describing: final))")
        let db = try PGConnection(conninfo: ConnectionString.adding("dbname", database, to: url))
        #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() ?? 0 > 0)
        kill(again.pid, SIGTERM)
        #expect(again.wait() == 0)
    }
}
