import BEMSCore
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs imports in the background: the requested stages in pipeline order, each as its own process (the stage
/// executables next to the server's), so every stage keeps its locking, manifests, run reports and monitoring, and a
/// crashing stage cannot take the server down.
///
/// One import at a time: every environment shares the work dir, whose lock the stages take, so a second start while
/// one runs is refused (409), as is a start while another bems command holds the work dir. The import's record is
/// written to `<workDir>/serve/imports/<id>.json` at every step, and each stage's output to
/// `<workDir>/serve/imports/<id>/<stage>.log`.
package final class ImportSupervisor: @unchecked Sendable {
    // @unchecked: the mutable state (records, running child, shutdown flag) is only touched under `lock`.

    package struct Settings: Sendable {
        /// The configuration, with the server's work dir applied.
        package var config: PipelineConfig
        /// `--config` for the stages (`nil`: none, they use their defaults).
        package var configPath: String?
        /// The folder of the `bems-<stage>` executables.
        package var binDirectory: String
        /// Each environment's variables for the stage processes (the service tokens taken out).
        package var childEnvironment: [String: [String: String]]
        /// Passes `--allow-superuser` to the stages (prod).
        package var allowSuperuser = false
        /// Imports kept in memory for `GET /admin/import/status`.
        package var keepRecent = 20
        /// Imports whose record and logs stay in the work dir.
        package var keepOnDisk = 50
        /// Strings masked in progress lines and errors (database URLs and their passwords).
        package var secrets: [String] = []

        package init(
            config: PipelineConfig, configPath: String?, binDirectory: String,
            childEnvironment: [String: [String: String]]
        ) {
            self.config = config
            self.configPath = configPath
            self.binDirectory = binDirectory
            self.childEnvironment = childEnvironment
        }
    }

    /// Why an import did not start.
    package enum StartError: Error, Sendable {
        /// An import is running (409).
        case busy(ImportRecord)
        /// Another bems command holds the work dir (409).
        case locked(String)
        /// The import could not be set up (500): the record could not be written, a stage executable is missing.
        case failed(String)
    }

    package let settings: Settings
    private let logger: Logger
    private let lock = NSLock()
    /// Oldest first.
    private var records: [ImportRecord] = []
    private var runningChild: pid_t?
    private var stopping = false
    private var runner: Thread?
    private let finished = NSCondition()

    package init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        records = loadRecords()
    }

    private var work: WorkDir { WorkDir(root: settings.config.workDir) }
    /// `<workDir>/serve/imports`.
    package var importsDirectory: String { settings.config.workDir + "/serve/imports" }

    // MARK: - Starting

    /// Starts an import of `stages` for `env` and returns its record (state `running`).
    package func start(env: String, stages: [Stage], sample: Double?, now: Date = Date()) throws(StartError)
        -> ImportRecord
    {
        for stage in stages where !FileManager.default.isExecutableFile(atPath: executable(stage)) {
            throw .failed("bems-\(stage.rawValue) is missing next to the server (\(settings.binDirectory))")
        }
        lock.lock()
        defer { lock.unlock() }
        if stopping { throw .failed("the server is stopping") }
        if let running = records.last(where: { !$0.isFinished }) { throw .busy(running) }
        // Another bems command (or a second server) using the work dir would make the first stage exit 73.
        do {
            _ = try WorkDirLock(directory: settings.config.workDir)
        } catch {
            throw .locked("another bems run is using the work directory; wait for it or stop it")
        }
        var record = ImportRecord(
            id: WorkDir.newRunID(now: now), env: env, stages: stages, sample: sample, startedAt: now)
        for i in record.steps.indices {
            record.steps[i].log = "serve/imports/\(record.id)/\(record.steps[i].stage.rawValue).log"
        }
        do {
            try AtomicFile.makeDirectory(importsDirectory + "/" + record.id)
            try AtomicFile.writeJSON(record, to: recordPath(record.id), durable: false)
        } catch {
            throw .failed("cannot write the import record in the work dir (\(error))")
        }
        records.append(record)
        prune()
        let id = record.id
        let thread = Thread { [self] in run(id) }
        thread.name = "bems-import-\(id)"
        runner = thread
        thread.start()
        logger.notice(
            "import started", metadata: ["import": "\(id)", "env": "\(env)", "stages": "\(stages.map(\.rawValue))"])
        return record
    }

    // MARK: - Reading

    /// An import by id: from memory, else from its record in the work dir.
    package func record(_ id: String) -> ImportRecord? {
        if let r = lock.withLock({ records.last { $0.id == id } }) { return withProgress(r) }
        guard Self.isImportID(id), let r = try? AtomicFile.readJSON(ImportRecord.self, from: recordPath(id)) else {
            return nil
        }
        return r.isFinished ? r : interrupted(r)
    }

    /// The running import of `env`, if any.
    package func current(env: String) -> ImportRecord? {
        lock.withLock { records.last { !$0.isFinished && $0.env == env } }.map(withProgress)
    }

    /// The recent imports of `env`, newest first.
    package func recent(env: String) -> [ImportRecord] {
        lock.withLock { records.filter { $0.env == env } }.reversed().map(withProgress)
    }

    /// Whether an import is running.
    package var isBusy: Bool { lock.withLock { records.contains { !$0.isFinished } } }

    /// The running import (of any environment: they share the work dir).
    package var running: ImportRecord? { lock.withLock { records.last { !$0.isFinished } }.map(withProgress) }

    /// Waits until no import runs (or `timeout` passes); returns whether none runs.
    @discardableResult
    package func waitUntilIdle(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        finished.lock()
        defer { finished.unlock() }
        while isBusy {
            if !finished.wait(until: min(deadline, Date().addingTimeInterval(0.2))), Date() >= deadline {
                return !isBusy
            }
        }
        return true
    }

    /// Stops the supervisor: no new imports; a running stage gets SIGTERM (the stages are safe to interrupt at any
    /// point), and its import ends `interrupted`. Waits up to `timeout` seconds for it.
    package func shutdown(timeout: Double = 10) {
        let child: pid_t? = lock.withLock {
            stopping = true
            return runningChild
        }
        if let child {
            logger.notice("stopping the running stage", metadata: ["pid": "\(child)"])
            kill(child, SIGTERM)
        }
        waitUntilIdle(timeout: timeout)
    }

    // MARK: - Running

    private func executable(_ stage: Stage) -> String { settings.binDirectory + "/bems-" + stage.rawValue }

    /// The command line of one stage.
    package func arguments(_ stage: Stage, env: String, sample: Double?) -> [String] {
        var args = [executable(stage), "--env", env, "--work-dir", settings.config.workDir]
        if let path = settings.configPath { args += ["--config", path] }
        if let sample { args += ["--sample", String(sample)] }
        if settings.allowSuperuser { args.append("--allow-superuser") }
        return args
    }

    private func run(_ id: String) {
        guard let initial = lock.withLock({ records.last { $0.id == id } }) else { return }
        let work = self.work
        var failedAt: Int?
        for (index, stage) in initial.stages.enumerated() {
            let before = Set(work.runIDs(stage) + work.failedRunIDs(stage))
            let started = Date()
            let stopped = update(id) { r in
                r.currentStage = stage
                r.steps[index].state = .running
                r.steps[index].startedAt = RunReport.timestamp(started)
            }
            if stopped {
                failedAt = index
                break
            }
            let status = runStage(stage, index: index, record: initial)
            let ended = Date()
            let created = (work.runIDs(stage) + work.failedRunIDs(stage)).filter { !before.contains($0) }.sorted()
            let report = created.last.flatMap { runReport(stage, $0) }
            update(id) { r in
                var step = r.steps[index]
                step.exitStatus = status
                step.finishedAt = RunReport.timestamp(ended)
                step.seconds = max(0, ended.timeIntervalSince(started))
                step.report = report
                step.runID = created.last ?? (status == 0 ? work.currentRunID(stage) : nil)
                step.state =
                    status == 0 ? (created.isEmpty ? .upToDate : .succeeded) : (stopping ? .interrupted : .failed)
                r.steps[index] = step
                if status != 0 {
                    r.error = failureMessage(stage, status: status, report: report, log: step.log)
                }
            }
            logger.notice(
                "import stage finished",
                metadata: ["import": "\(id)", "stage": "\(stage.rawValue)", "exit": "\(status)"])
            if status != 0 {
                failedAt = index
                break
            }
        }
        let end = Date()
        update(id) { r in
            let interrupted = stopping
            if let failedAt {
                for i in r.steps.indices where i > failedAt || (i == failedAt && r.steps[i].state == .pending) {
                    r.steps[i].state = .skipped
                }
                r.state = interrupted ? .interrupted : .failed
                if interrupted { r.error = "the server stopped while the import ran" + (r.error.map { " (\($0))" } ?? "") }
            } else {
                r.state = .succeeded
            }
            r.currentStage = nil
            r.finishedAt = RunReport.timestamp(end)
            r.seconds = max(0, end.timeIntervalSince(RunReport.date(r.startedAt) ?? end))
        }
        finished.lock()
        finished.broadcast()
        finished.unlock()
        logger.notice("import finished", metadata: ["import": "\(id)"])
    }

    /// Runs one stage process to its end; its exit status (128 + the signal when killed, 127 when it cannot start).
    private func runStage(_ stage: Stage, index: Int, record: ImportRecord) -> Int32 {
        let log = settings.config.workDir + "/" + (record.steps[index].log ?? "serve/\(stage.rawValue).log")
        let command = arguments(stage, env: record.env, sample: record.sample)
        let environment = settings.childEnvironment[record.env] ?? ProcessInfo.processInfo.environment
        let pid: pid_t
        do {
            pid = try lock.withLock { () throws -> pid_t in
                if stopping { throw PipelineError(.unexpected, "stopping") }
                let pid = try StageProcess.spawn(command, environment: environment, log: log)
                runningChild = pid
                return pid
            }
        } catch {
            if !stopping {
                logger.error(
                    "cannot start a stage", metadata: ["stage": "\(stage.rawValue)", "error": "\(error)"])
            }
            return 127
        }
        let status = StageProcess.wait(pid)
        lock.withLock { runningChild = nil }
        return status
    }

    /// Applies `change` to the record `id` and writes it; returns whether the supervisor is stopping.
    @discardableResult
    private func update(_ id: String, _ change: (inout ImportRecord) -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let index = records.lastIndex(where: { $0.id == id }) else { return stopping }
        change(&records[index])
        do {
            try AtomicFile.writeJSON(records[index], to: recordPath(id), durable: false)
        } catch {
            logger.warning("cannot write the import record", metadata: ["import": "\(id)", "error": "\(error)"])
        }
        return stopping
    }

    /// The report of a stage run: in its run folder, or in `failed/` for a run that failed before publishing.
    private func runReport(_ stage: Stage, _ runID: String) -> RunReport? {
        let published = work.runDirectory(stage, runID) + "/" + RunReport.fileName
        let failed = work.failedRunDirectory(stage, runID) + "/" + RunReport.fileName
        return (try? AtomicFile.readJSON(RunReport.self, from: published))
            ?? (try? AtomicFile.readJSON(RunReport.self, from: failed))
    }

    /// Why a stage failed: its run report's failure, else the last `error:` line it printed.
    private func failureMessage(_ stage: Stage, status: Int32, report: RunReport?, log: String?) -> String {
        var message = "bems-\(stage.rawValue) exited \(status)"
        if let failure = report?.failure {
            message += ": " + failure.message
        } else if let log, let line = Self.lastLines(of: settings.config.workDir + "/" + log, maxBytes: 16_384)
            .last(where: { $0.hasPrefix("error: ") })
        {
            message += ": " + line.dropFirst("error: ".count)
        } else if status > 128 {
            message += ", killed by signal \(status - 128)"
        }
        return scrub(String(message.prefix(2000)))
    }

    /// The record with the running step's latest log line as its progress.
    private func withProgress(_ record: ImportRecord) -> ImportRecord {
        guard !record.isFinished, let i = record.steps.firstIndex(where: { $0.state == .running }),
            let log = record.steps[i].log
        else { return record }
        var r = record
        if let line = Self.lastLines(of: settings.config.workDir + "/" + log, maxBytes: 4096).last {
            r.steps[i].progress = scrub(String(line.prefix(500)))
        }
        return r
    }

    private func scrub(_ text: String) -> String { SecretScrubber.scrub(text, secrets: settings.secrets) }

    /// The non-empty lines in the last `maxBytes` of a file.
    static func lastLines(of path: String, maxBytes: Int) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        var lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        if size > UInt64(maxBytes), !lines.isEmpty { lines.removeFirst() }  // cut in the middle
        return lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    // MARK: - Records in the work dir

    private func recordPath(_ id: String) -> String { importsDirectory + "/" + id + ".json" }

    /// A run id as ``WorkDir/newRunID(now:)`` makes them (so a path built from a request stays in the folder).
    package static func isImportID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64
            && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || $0 == 45 }
    }

    /// A record left `running` by a server that stopped: it is `interrupted`.
    private func interrupted(_ record: ImportRecord) -> ImportRecord {
        var r = record
        r.state = .interrupted
        r.currentStage = nil
        for i in r.steps.indices where r.steps[i].state == .running || r.steps[i].state == .pending {
            r.steps[i].state = r.steps[i].state == .running ? .interrupted : .skipped
        }
        if r.error == nil { r.error = "the server stopped while the import ran" }
        return r
    }

    /// The last ``Settings/keepRecent`` records in the work dir, those a stopped server left running marked
    /// interrupted (and written so).
    private func loadRecords() -> [ImportRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: importsDirectory)) ?? []
        let ids = names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.filter(Self.isImportID)
            .sorted().suffix(settings.keepRecent)
        return ids.compactMap { id in
            guard let r = try? AtomicFile.readJSON(ImportRecord.self, from: recordPath(id)) else { return nil }
            guard !r.isFinished else { return r }
            let fixed = interrupted(r)
            try? AtomicFile.writeJSON(fixed, to: recordPath(id), durable: false)
            return fixed
        }
    }

    /// Keeps ``Settings/keepRecent`` records in memory and ``Settings/keepOnDisk`` in the work dir (called under
    /// `lock`).
    private func prune() {
        if records.count > settings.keepRecent {
            let extra = records.count - settings.keepRecent
            let removable = records.prefix(extra).filter(\.isFinished).map(\.id)
            records.removeAll { removable.contains($0.id) }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: importsDirectory)) ?? []
        let ids = Set(names.map { $0.hasSuffix(".json") ? String($0.dropLast(5)) : $0 }).filter(Self.isImportID)
            .sorted()
        let active = Set(records.filter { !$0.isFinished }.map(\.id))
        for id in ids.dropLast(settings.keepOnDisk) where !active.contains(id) {
            try? FileManager.default.removeItem(atPath: recordPath(id))
            try? FileManager.default.removeItem(atPath: importsDirectory + "/" + id)
        }
    }
}

/// Starting and waiting for a stage process.
enum StageProcess {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np`, where the C library has it (looked up at run time: the Swift
    /// Glibc module does not declare it).
    static let closeFromAction: CloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        return unsafeBitCast(symbol, to: CloseFrom.self)
    }()

    /// Starts `command` with stdin from /dev/null and stdout and stderr appended to `log`, default signal handling
    /// and no inherited descriptors beyond those three.
    static func spawn(_ command: [String], environment: [String: String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Descriptors the server opened without close-on-exec stay out of the stage (glibc 2.34+).
        if let closeFrom = closeFromAction { _ = closeFrom(&actions, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw PipelineError(.unexpected, "cannot start \(command[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Waits for `pid`; its exit status, or 128 + the signal that ended it.
    static func wait(_ pid: pid_t) -> Int32 {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 {
            if errno != EINTR { return 1 }
        }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }
}
