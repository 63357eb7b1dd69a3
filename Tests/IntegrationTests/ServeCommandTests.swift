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

    func environment(token: String?) throws -> [String: String] {
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        var env = ProcessInfo.processInfo.environment
        env["BEMS_DEV_DATABASE_URL"] = url
        env["BEMS_DEV_SERVICE_TOKEN"] = token
        return env
    }

    /// Starts `command` and waits for its "listening on" line (or its exit).
    func serve(_ command: [String], token: String?) throws -> (ChildProcess, String, String) {
        try AtomicFile.makeDirectory(root)
        let out = root + "/out-\(UInt32.random(in: 0...UInt32.max))"
        let err = out + ".err"
        let child = try ChildProcess(command, environment: try environment(token: token), output: out, errors: err)
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
}
