import Foundation
import Logging

/// The dev environment's local PostgreSQL, kept in the work dir (`<workDir>/pg`) and started on first use when no
/// dev database URL is set. It listens on a Unix socket in that folder only (no TCP port is opened), trusts local
/// connections, and runs with `fsync=off`: a throwaway database for trying the pipeline, never for real data.
/// staging and prod never use it.
///
/// Run as root, the server runs as the `postgres` OS user (PostgreSQL refuses root), like Debian's own scripts.
/// `stages/pg-embedded.sh` does the same for the test scripts, which need a server before anything is built.
package struct EmbeddedPostgres: Sendable {
    /// Absolute folder holding `data/`, the socket and `server.log`.
    package let directory: String
    package let port: Int
    /// The port the dev database uses by default (tests use 54329, benchmarks 54338–54339).
    package static let defaultPort = 54331

    package init(directory: String, port: Int = defaultPort) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.port = port
    }

    /// The libpq URI of the server's `postgres` database, over the Unix socket.
    package var url: String { "postgresql:///postgres?host=\(directory)&port=\(port)&user=postgres" }

    /// Initializes the folder when needed and starts the server unless it is already running.
    ///
    /// - Throws: ``PipelineError`` 69 when the PostgreSQL server programs are missing or the server does not start
    ///   (with the end of its log), 64 when the folder's path is too long for a Unix socket.
    package func start(logger: Logger? = nil) throws {
        guard directory.utf8.count + 18 <= 107 else {
            throw PipelineError.usage("the work dir path is too long for the embedded PostgreSQL's Unix socket: \(directory)")
        }
        let bin = try Self.binDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let root = geteuid() == 0
        if root {
            try FileManager.default.setAttributes(
                [.ownerAccountName: "postgres", .posixPermissions: 0o700], ofItemAtPath: directory)
        }
        if !FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION") {
            logger?.notice("initializing the embedded dev PostgreSQL", metadata: ["dir": "\(directory)"])
            try run(
                bin + "/initdb", ["-D", directory + "/data", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"],
                what: "initdb")
        }
        if isRunning(bin: bin) { return }
        logger?.notice("starting the embedded dev PostgreSQL", metadata: ["dir": "\(directory)", "port": "\(port)"])
        try? "\(port)\n".write(toFile: directory + "/port", atomically: true, encoding: .utf8)
        try run(
            bin + "/pg_ctl",
            [
                "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "start", "-o",
                "-k '\(directory)' -p \(port) -c listen_addresses='' -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
            ], what: "pg_ctl start")
    }

    /// Stops the server (fast shutdown); nothing happens when it is not running.
    package func stop() throws {
        let bin = try Self.binDirectory()
        guard isRunning(bin: bin) else { return }
        try run(bin + "/pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "stop"], what: "pg_ctl stop")
    }

    func isRunning(bin: String) -> Bool {
        guard FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION") else { return false }
        return (try? run(bin + "/pg_ctl", ["-D", directory + "/data", "status"], what: "pg_ctl status")) != nil
    }

    /// The folder of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
    static func binDirectory() throws -> String {
        let fm = FileManager.default
        func usable(_ dir: String) -> Bool { fm.isExecutableFile(atPath: dir + "/initdb") && fm.isExecutableFile(atPath: dir + "/pg_ctl") }
        if let out = try? capture("/usr/bin/env", ["pg_config", "--bindir"]) {
            let dir = out.trimmingCharacters(in: .whitespacesAndNewlines)
            if usable(dir) { return dir }
        }
        let versions = ((try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted(by: >)
        for v in versions where usable("/usr/lib/postgresql/\(v)/bin") { return "/usr/lib/postgresql/\(v)/bin" }
        throw PipelineError(
            .unavailable,
            "no PostgreSQL server programs (initdb, pg_ctl) for the embedded dev database: install postgresql, or set the dev database URL")
    }

    /// Runs a server program, as the `postgres` user when we are root.
    @discardableResult
    private func run(_ program: String, _ arguments: [String], what: String) throws -> String {
        let (exe, args) = geteuid() == 0 ? ("/usr/sbin/runuser", ["-u", "postgres", "--", program] + arguments) : (program, arguments)
        do {
            return try Self.capture(exe, args)
        } catch let failure as CommandFailure {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8))
                .map { $0.split(separator: "\n").suffix(10).joined(separator: "\n") } ?? ""
            throw PipelineError(
                .unavailable, "embedded PostgreSQL: \(what) failed (exit \(failure.status)): \(failure.output)" + (log.isEmpty || what == "pg_ctl status" ? "" : "\n\(log)"))
        }
    }

    struct CommandFailure: Error {
        var status: Int32
        var output: String
    }

    /// Runs a program and returns its output (stdout and stderr together).
    ///
    /// posix_spawn and waitpid rather than Foundation's `Process`: the server that `pg_ctl start` leaves running
    /// inherits descriptors, and `Process` (pipe or not) was seen waiting for it instead of for `pg_ctl`. Output goes
    /// to a temporary file, which the server does not keep open.
    private static func capture(_ exe: String, _ args: [String]) throws -> String {
        let outputPath = NSTemporaryDirectory() + "bems-pg-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, exe, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw CommandFailure(status: -1, output: "cannot run \(exe): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // WIFEXITED / WEXITSTATUS, which Swift does not import (macros).
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard code == 0 else { throw CommandFailure(status: code, output: text) }
        return text
    }
}
