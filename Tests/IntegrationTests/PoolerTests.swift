import Foundation
import Testing

@testable import BEMSCore

/// A real pgbouncer in front of the test server: transaction mode is refused, session mode is accepted.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .serialized, .timeLimit(.minutes(2)))
struct PoolerTests {
    /// Starts pgbouncer in `mode` on a free port in front of the test server; returns the process and the port.
    static func startPgbouncer(mode: String, in dir: String) throws -> (Process, Int) {
        guard let url = TestDatabase.url, let options = ConnectionString.options(url) else {
            throw TestDatabase.MissingURL()
        }
        let exe = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let program = try #require(exe, "pgbouncer is not installed (stages/ensure-deps.sh --with-test-tools installs it)")
        let port = Int.random(in: 20_000...29_999)
        let host = options["host"] ?? "/tmp"
        let serverPort = options["port"] ?? "5432"
        let user = options["user"] ?? "postgres"
        let ini = """
            [databases]
            postgres = host=\(host) port=\(serverPort) dbname=\(options["dbname"] ?? "postgres") user=\(user)
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = any
            pool_mode = \(mode)
            default_pool_size = 4
            logfile = \(dir)/pgbouncer.log
            pidfile = \(dir)/pgbouncer.pid
            """
        try ini.write(toFile: dir + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        let p = Process()
        if geteuid() == 0 {  // pgbouncer refuses to run as root
            _ = chown(dir, 0, 0)
            try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: dir)
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            p.arguments = ["-u", "postgres", "--", program, dir + "/pgbouncer.ini"]
        } else {
            p.executableURL = URL(fileURLWithPath: program)
            p.arguments = [dir + "/pgbouncer.ini"]
        }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until it accepts connections.
        for _ in 0..<50 {
            if (try? PGConnection(conninfo: conninfo(port: port, user: user))) != nil { return (p, port) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        p.terminate()
        let log = (try? String(contentsOfFile: dir + "/pgbouncer.log", encoding: .utf8)) ?? ""
        Issue.record("pgbouncer did not start: \(log.suffix(500))")
        throw TestDatabase.MissingURL()
    }

    static func conninfo(port: Int, user: String = "postgres") -> String {
        "host=127.0.0.1 port=\(port) dbname=postgres user=\(user) sslmode=disable connect_timeout=5"
    }

    func withPgbouncer(mode: String, _ body: (Int) throws -> Void) throws {
        let dir = "/tmp/bems-pgb-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (process, port) = try Self.startPgbouncer(mode: mode, in: dir)
        defer {
            // runuser forwards SIGTERM to pgbouncer.
            process.terminate()
            process.waitUntilExit()
            if let pid = try? String(contentsOfFile: dir + "/pgbouncer.pid", encoding: .utf8),
                let n = Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                kill(n, SIGTERM)
            }
        }
        try body(port)
    }

    @Test func aTransactionModePoolerIsRefused() throws {
        try withPgbouncer(mode: "transaction") { port in
            let target = DatabaseTarget(env: "staging", conninfo: Self.conninfo(port: port), variable: "BEMS_STAGING_DATABASE_URL")
            #expect {
                _ = try target.connect()
            } throws: { error in
                let e = error as! PipelineError
                return e.exitStatus == .usage && e.message.contains("transaction-mode connection pooler")
                    && e.message.contains("port 5432")
            }
        }
    }

    @Test func aSessionModePoolerIsAccepted() throws {
        try withPgbouncer(mode: "session") { port in
            let target = DatabaseTarget(env: "staging", conninfo: Self.conninfo(port: port), variable: "V")
            let db = try target.connect()
            #expect(try db.exec("SELECT 1").scalarInt64() == 1)
            // The pooler is really there: its backend key is not the server's.
            #expect(try db.exec("SELECT pg_backend_pid()").scalarInt64() != Int64(db.backendPID))
        }
    }
}
