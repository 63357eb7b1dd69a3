import Foundation
import Logging
import Testing

@testable import BEMSCore

/// Environment rules that need a real server: prod refuses a superuser, dev starts its embedded PostgreSQL, and a
/// failing connection never shows its password anywhere.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .serialized)
struct EnvironmentDatabaseTests {
    static let buildDirectory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/debug").path
    }()

    @Test func prodRefusesASuperuserUnlessAllowed() throws {
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        let probe = try PGConnection(conninfo: url)
        try #require(probe.parameterStatus("is_superuser") == "on", "the test server's user is a superuser")
        var target = DatabaseTarget(env: "prod", conninfo: url, variable: "BEMS_PROD_DATABASE_URL")
        #expect {
            _ = try target.connect()
        } throws: { error in
            let e = error as! PipelineError
            return e.exitStatus == .noPermission && e.message.contains("superuser") && e.message.contains("--allow-superuser")
        }
        target.allowSuperuser = true
        #expect(try target.connect().exec("SELECT 1").scalarInt64() == 1)
        // staging and dev accept it (their databases are throwaway or shared test servers).
        #expect(try DatabaseTarget(env: "staging", conninfo: url, variable: "V").connect().isAlive)
    }

    @Test func devWithoutAURLStartsTheEmbeddedDatabase() throws {
        let dir = "/tmp/bems-embedded-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        defer {
            try? EmbeddedPostgres(directory: dir + "/work/pg").stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        var config = PipelineConfig()
        config.workDir = dir + "/work"
        let target = try DatabaseTarget.resolve(config: config, env: "dev", environment: [:])
        #expect(target.conninfo.contains("host=\(dir)/work/pg"))
        #expect(target.variable.contains("embedded"))
        #expect(try target.connect().exec("SELECT 41 + 1").scalarInt64() == 42)
        // Idempotent: a second resolution uses the running server; after a stop, it starts again.
        _ = try DatabaseTarget.resolve(config: config, env: "dev", environment: [:])
        try EmbeddedPostgres(directory: dir + "/work/pg").stop()
        #expect(throws: PipelineError.self) { _ = try target.connect() }
        let again = try DatabaseTarget.resolve(config: config, env: "dev", environment: [:])
        #expect(try again.connect().exec("SELECT 1").scalarInt64() == 1)
    }

    /// A connection that fails with a known password: the password appears in no message, log line, or file.
    @Test func aFailingConnectionNeverShowsItsPassword() throws {
        let secret = "KnownSecret-7f3a9"
        let url = "postgresql://importer:\(secret)@127.0.0.1:9/bems?connect_timeout=2"
        // In process: the error and every log line (retries included).
        let sink = CollectedLog()
        var target = DatabaseTarget(env: "staging", conninfo: url, variable: "BEMS_STAGING_DATABASE_URL")
        target.retry = RetryPolicy(baseDelay: 0.01, maxAttempts: 3, budget: 5, jitter: .none)
        var logger = Logger(label: "test", factory: { _ in sink })
        logger.logLevel = .trace
        var message = ""
        do {
            _ = try target.connect(logger: logger)
            Issue.record("the connection should fail")
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("cannot connect"))
        #expect(!message.contains(secret))
        #expect(!sink.text.isEmpty, "the retries were logged")
        #expect(!sink.text.contains(secret))

        // Out of process: every stage program with the URL in its environment (and in a .env file), then every file
        // they left behind.
        let dir = (path: NSTemporaryDirectory() + "bems-secret-" + String(UInt32.random(in: 0...UInt32.max), radix: 36), ())
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        func write(_ name: String, _ text: String) throws {
            let path = dir.path + "/" + name
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try write(".env.staging", "BEMS_STAGING_DATABASE_URL=\(url)\n")
        try write(
            "pipeline.json",
            #"{"environments": {"staging": {"retry": {"baseDelaySeconds": 0.01, "maxAttempts": 2, "jitter": "none"}}}}"#)
        try write("in/2019Floor1.csv", "Date,z1_Light(kW)\n2019-03-04 00:00:00,1.5\n")
        var outputs = ""
        for (program, args) in [
            ("bems-validate", ["in"]), ("bems-normalize", ["--sample", "1", "in"]), ("bems-dedupe", []),
            ("bems-load", []), ("bems-refresh", []), ("bems", ["verify"]), ("bems", ["setup"]), ("bems", ["status"]),
        ] {
            for useFile in [true, false] {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: Self.buildDirectory + "/" + program)
                p.arguments = (program == "bems" ? [args[0]] : []) + ["--env", "staging", "--work-dir", "w", "--log-level", "trace"]
                    + (program == "bems" ? Array(args.dropFirst()) : args)
                p.currentDirectoryURL = URL(fileURLWithPath: dir.path)
                var env = ProcessInfo.processInfo.environment
                env["BEMS_STAGING_DATABASE_URL"] = useFile ? nil : url
                p.environment = env
                let out = Pipe()
                let err = Pipe()
                p.standardOutput = out
                p.standardError = err
                try p.run()
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                outputs += String(decoding: o + e, as: UTF8.self)
                // (bems-load stops earlier, 66: there is no dedupe run to load)
                if ["bems-dedupe", "bems-refresh"].contains(program) {
                    #expect(p.terminationStatus == 69, "\(program) exits 69 when the database is unreachable")
                }
            }
        }
        #expect(outputs.contains("cannot connect"))
        #expect(outputs.contains("127.0.0.1"))
        #expect(!outputs.contains(secret))
        let files = FileManager.default.enumerator(atPath: dir.path + "/w")?.compactMap { $0 as? String } ?? []
        #expect(!files.isEmpty)
        for file in files {
            guard let data = FileManager.default.contents(atPath: dir.path + "/w/" + file) else { continue }
            #expect(!String(decoding: data, as: UTF8.self).contains(secret), "\(file)")
        }
    }
}

/// A log handler that keeps every message and its metadata as text.
final class CollectedLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        lock.lock()
        defer { lock.unlock() }
        lines.append("\(event.level) \(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })")
    }
    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return lines.joined(separator: "\n")
    }
}
