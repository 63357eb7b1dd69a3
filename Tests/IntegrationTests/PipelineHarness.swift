import Foundation
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// A whole pipeline driven through the built executables (`.build/debug/bems-*`), on generated CSV files, against the
/// test server in a schema of its own (tables and ledger), for the fault tests that crash, starve or race real
/// processes: ``StageKillTests``, ``DiskFaultTests``, ``ConcurrentRunTests``, ``CorruptChunkTests``.
final class PipelineHarness: @unchecked Sendable {
    // @unchecked: the stored properties are constants; only ``db`` is stateful, and only the test's own thread uses it
    // (threads that race pipelines only start processes).
    /// One finished stage process.
    struct StageRun {
        var stage: String
        var status: Int32
        var stderr: String
        var seconds: Double
    }

    /// `.build/debug` of this package, or `BEMS_TEST_BIN_DIR` (e.g. a release build, or older executables to show
    /// that a test catches what a fix repairs).
    static let binDirectory =
        ProcessInfo.processInfo.environment["BEMS_TEST_BIN_DIR"] ?? FaultInjectionTests.root + "/.build/debug"

    /// The temporary folder holding the inputs, the configuration and (by default) the work dir.
    let root: String
    let input: String
    let config: String
    /// The work directory the stages get with `--work-dir`.
    var work: String
    /// The schema holding `sensor_readings`, `daily_aggregates` and the ledger.
    let schema: String
    let conninfo: String
    /// The test's own connection, `search_path` set to ``schema``.
    let db: PGConnection

    /// Creates the folder, the configuration and the inputs (`days` generated days of `floors`, each file with one
    /// rejected line, so validate writes dead letters), and an empty schema.
    init(days: Int = 1, floors: [Int] = [1, 2], seed: UInt64 = 7, retryBaseSeconds: Double = 0.2) throws {
        root = NSTemporaryDirectory() + "bems-pipe-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        input = root + "/in"
        config = root + "/pipeline.json"
        work = root + "/work"
        schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try AtomicFile.makeDirectory(input)
        try AtomicFile.write(
            Array(
                """
                {"environments": {"dev": {"retry": {"baseDelaySeconds": \(retryBaseSeconds), "maxAttempts": 6,
                  "budgetSeconds": 20, "jitter": "none"}}}}
                """.utf8), to: config)
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        conninfo = try StageFixture.conninfo(schema: schema)
        db = try PGConnection(conninfo: url)
        try db.exec("CREATE SCHEMA \(schema)")
        try db.exec("SET search_path TO \(schema)")
        try generateInput(days: days, floors: floors, seed: seed)
    }

    /// Drops the schema and removes the folder.
    func remove() {
        if db.transactionStatus != .idle { _ = try? db.exec("ROLLBACK") }
        _ = try? db.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE")
        try? FileManager.default.removeItem(atPath: root)
    }

    /// (Re)writes the input files: `days` days from 2019-03-04, plus one line with too few fields at the end of each
    /// file (a rejected record within the default threshold).
    func generateInput(days: Int, floors: [Int] = [1, 2], seed: UInt64 = 7) throws {
        let configuration = SampleConfiguration(
            start: CivilDate(year: 2019, month: 3, day: 4)!, days: days, floors: floors, seed: seed)
        let summary = try SampleGenerator(configuration: configuration).write(toDirectory: input)
        for file in summary.files {
            guard let handle = FileHandle(forWritingAtPath: input + "/" + file.name) else {
                throw PipelineError.io("\(input)/\(file.name): cannot open")
            }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("2019-03-04 23:59:30,1.5,2\n".utf8))
            try handle.close()
        }
    }

    /// Empties the schema (a fresh database for the next run).
    func resetSchema() throws {
        try db.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE")
        try db.exec("CREATE SCHEMA \(schema)")
    }

    // MARK: - Processes

    static func executable(_ stage: Stage) -> String { binDirectory + "/bems-" + stage.rawValue }

    /// Fails the test early when the executables were not built.
    static func requireExecutables() throws {
        for stage in Stage.allCases {
            try #require(
                FileManager.default.isExecutableFile(atPath: executable(stage)), "build first: swift build")
        }
        try #require(FileManager.default.isExecutableFile(atPath: binDirectory + "/bems"), "build first")
    }

    /// The command line of a stage (no `--force`).
    func arguments(_ stage: Stage, work: String? = nil) -> [String] {
        var args = [
            Self.executable(stage), "--config", config, "--work-dir", work ?? self.work, "--env", "dev", "--log-level",
            "warning",
        ]
        switch stage {
        case .validate: args.append(input)
        // Every day: the dev environment's 10% day sample would leave these one- and two-day inputs (nearly) empty.
        case .normalize: args += ["--sample", "1", input]
        case .dedupe: break
        case .load, .refresh: args += ["--ledger-schema", schema]
        }
        return args
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["BEMS_DEV_DATABASE_URL"] = conninfo
        return env
    }

    /// Starts a command; stderr goes to `errors` (default: a fresh log file under ``root``).
    func spawn(_ command: [String], errors: String? = nil) throws -> (ChildProcess, String) {
        let log = errors ?? root + "/stderr-\(UInt32.random(in: 0...UInt32.max)).log"
        return (try ChildProcess(command, environment: environment, output: "/dev/null", errors: log), log)
    }

    /// Runs a command to its end.
    func run(_ command: [String], label: String) throws -> StageRun {
        let started = ContinuousClock.now
        let (child, log) = try spawn(command)
        let status = child.wait()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: log)
        return StageRun(stage: label, status: status, stderr: text, seconds: Self.seconds(since: started))
    }

    /// Runs one stage to its end (`wrapper` is prepended, e.g. a shell that lowers a limit first).
    func run(_ stage: Stage, extra: [String] = [], wrapper: [String] = [], work: String? = nil) throws -> StageRun {
        try run(wrapper + arguments(stage, work: work) + extra, label: stage.rawValue)
    }

    /// Runs `stages` in order, stopping at the first failure; returns every run.
    @discardableResult
    func runPipeline(_ stages: some Sequence<Stage> = Stage.allCases) throws -> [StageRun] {
        var runs: [StageRun] = []
        for stage in stages {
            let run = try run(stage)
            runs.append(run)
            if run.status != 0 { break }
        }
        return runs
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    // MARK: - Database content

    /// Everything the pipeline put in the database, reduced to counts and order-independent checksums.
    struct Content: Equatable, CustomStringConvertible {
        var readings: Int
        var distinctKeys: Int
        /// md5 over every reading's sensor, instant, floor, type, exact value, unit and status, in key order.
        var checksum: String
        var aggregates: Int
        var aggregatesChecksum: String
        var indexes: String

        var description: String {
            "\(readings) readings (\(distinctKeys) keys, md5 \(checksum)), \(aggregates) aggregate rows (md5 "
                + "\(aggregatesChecksum)), indexes \(indexes)"
        }
    }

    func content() throws -> Content {
        let row = try db.exec(
            """
            SELECT count(*), count(DISTINCT (sensor_id, "timestamp")),
                   coalesce(md5(string_agg(sensor_id || '|' || extract(epoch FROM "timestamp")::bigint || '|'
                       || floor_number || '|' || coalesce(equipment_type, '-') || '|'
                       || coalesce(reading_value::text, 'NULL') || '|' || coalesce(unit, '-') || '|'
                       || coalesce(status, '-'), ',' ORDER BY sensor_id, "timestamp")), 'empty')
            FROM sensor_readings
            """
        ).rows[0]
        let aggregates = try db.exec(
            "SELECT count(*), coalesce(md5(string_agg(a::text, ',' ORDER BY a::text)), 'empty') FROM daily_aggregates a"
        ).rows[0]
        let indexes =
            try db.exec(
                "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = current_schema()"
            ).scalar() ?? ""
        return Content(
            readings: Int(row[0] ?? "") ?? -1, distinctKeys: Int(row[1] ?? "") ?? -1, checksum: row[2] ?? "",
            aggregates: Int(aggregates[0] ?? "") ?? -1, aggregatesChecksum: aggregates[1] ?? "", indexes: indexes)
    }

    /// The ledger: chunks committed (and how many distinct names), rows they say they inserted.
    func ledger() throws -> (committed: Int, distinct: Int, inserted: Int) {
        guard try db.exec("SELECT to_regclass('loaded_chunks') IS NOT NULL").scalar() == "t" else { return (0, 0, 0) }
        let row = try db.exec(
            """
            SELECT count(*), count(DISTINCT chunk_name), coalesce(sum(inserted), 0) FROM loaded_chunks
            WHERE status = 'committed'
            """
        ).rows[0]
        return (Int(row[0] ?? "") ?? -1, Int(row[1] ?? "") ?? -1, Int(row[2] ?? "") ?? -1)
    }

    /// Checks the ledger against the current dedupe run: each of its chunks committed exactly once.
    func ledgerProblems() throws -> [String] {
        guard let dedupe = try WorkDir(root: work).currentManifest(.dedupe) else { return ["no current dedupe run"] }
        var problems: [String] = []
        let names = try db.exec(
            "SELECT chunk_name || '|' || sha256 FROM loaded_chunks WHERE status = 'committed' ORDER BY 1"
        ).rows.map { $0[0] ?? "" }
        if Set(names).count != names.count { problems.append("a chunk is committed twice: \(names)") }
        for chunk in dedupe.chunks where !names.contains(chunk.file + "|" + chunk.sha256) {
            problems.append("chunk \(chunk.file) of the current dedupe run is not committed")
        }
        return problems
    }

    // MARK: - Work dir

    /// What a look at the work dir found.
    struct Audit {
        /// Inconsistencies: an unparsable manifest, a chunk that fails its SHA-256, manifests that disagree.
        var problems: [String] = []
        /// Leftover temporary files (`.<name>.tmp-…`), never referenced by a manifest.
        var tempFiles: [String] = []
        /// Run folders without a manifest (a run that crashed or failed), never current.
        var abandonedRuns: [String] = []
    }

    /// Audits the work dir: every manifest parses, every chunk a manifest names (except in runs a later stage marked
    /// stale) is there and matches its SHA-256 and size, every `CURRENT` names a run with a manifest, and the current runs agree with each other (each
    /// stage's upstream run is the current run of the stage before, dedupe's inputs are normalize's chunks, the
    /// validate report and dead letters parse).
    ///
    /// - Parameters:
    ///   - complete: Every stage must have a current run.
    ///   - agreement: Check that the current runs agree (off while later stages are legitimately behind).
    static func audit(_ root: String, complete: Bool, agreement: Bool = true) -> Audit {
        var audit = Audit()
        let work = WorkDir(root: root)
        let fm = FileManager.default
        if let walker = fm.enumerator(atPath: root) {
            for case let path as String in walker {
                let name = (path as NSString).lastPathComponent
                if name.hasPrefix("."), name != ".lock" { audit.tempFiles.append(path) }
            }
        }
        var current: [Stage: StageManifest] = [:]
        for stage in Stage.allCases {
            for run in work.runIDs(stage) {
                let path = work.manifestPath(stage, run)
                guard fm.fileExists(atPath: path) else {
                    audit.abandonedRuns.append("\(stage.rawValue)/\(run)")
                    continue
                }
                let manifest: StageManifest
                do {
                    manifest = try work.manifest(stage, run)
                } catch {
                    audit.problems.append("\(path) does not parse: \(error)")
                    continue
                }
                if manifest.stage != stage || manifest.runID != run {
                    audit.problems.append("\(path) is the manifest of \(manifest.stage) \(manifest.runID)")
                }
                if work.currentRunID(stage) == run { current[stage] = manifest }
                // A run a later stage refused (marked stale) may hold the damaged chunk; it must not stay current.
                if work.staleReason(stage, run) != nil {
                    if complete, work.currentRunID(stage) == run {
                        audit.problems.append("\(stage.rawValue)/CURRENT names \(run), which is marked stale")
                    }
                    continue
                }
                for chunk in manifest.chunks {
                    let file = work.runDirectory(stage, run) + "/" + chunk.file
                    if chunk.file.contains(".tmp") { audit.problems.append("\(path) names a temporary file") }
                    guard let hash = try? Digest.sha256(file: file) else {
                        audit.problems.append("\(file), named by \(path), is missing")
                        continue
                    }
                    if hash.hex != chunk.sha256 || hash.bytes != chunk.bytes {
                        audit.problems.append("\(file) fails its SHA-256 or size check")
                    }
                }
            }
            if let id = work.currentRunID(stage), current[stage] == nil {
                audit.problems.append("\(stage.rawValue)/CURRENT names \(id), which is not a readable run")
            }
            if complete, work.currentRunID(stage) == nil {
                audit.problems.append("\(stage.rawValue) has no current run")
            }
        }
        guard agreement else { return audit }
        if let v = current[.validate] {
            let dir = work.runDirectory(.validate, v.runID)
            if (try? AtomicFile.readJSON(ValidationReport.self, from: dir + "/report.json")) == nil {
                audit.problems.append("validate \(v.runID): report.json does not parse")
            }
            let letters = (try? String(contentsOfFile: dir + "/dead-letter.jsonl", encoding: .utf8)) ?? "?"
            for line in letters.split(separator: "\n")
            where (try? JSONDecoder().decode(DeadLetter.self, from: Data(line.utf8))) == nil {
                audit.problems.append("validate \(v.runID): dead-letter line does not parse: \(line.prefix(80))")
            }
        }
        if let n = current[.normalize] {
            if n.upstreamRunID != current[.validate]?.runID {
                audit.problems.append("normalize \(n.runID) read validate \(n.upstreamRunID ?? "-"), not the current")
            }
            for input in n.inputs
            where current[.validate]?.inputs.first(where: { $0.path == input.path })?.sha256 != input.sha256 {
                audit.problems.append("normalize input \(input.name) differs from the validated one")
            }
        }
        if let d = current[.dedupe] {
            if d.upstreamRunID != current[.normalize]?.runID {
                audit.problems.append("dedupe \(d.runID) read normalize \(d.upstreamRunID ?? "-"), not the current")
            }
            let normalized = (current[.normalize]?.chunks ?? []).map { "\($0.file)|\($0.sha256)" }.sorted()
            if d.inputs.map({ "\($0.name)|\($0.sha256)" }).sorted() != normalized {
                audit.problems.append("dedupe \(d.runID) inputs are not the current normalize chunks")
            }
            if (try? AtomicFile.readJSON(
                DedupeReport.self, from: work.runDirectory(.dedupe, d.runID) + "/report.json")) == nil
            {
                audit.problems.append("dedupe \(d.runID): report.json does not parse")
            }
        }
        if let l = current[.load] {
            if l.upstreamRunID != current[.dedupe]?.runID {
                audit.problems.append("load \(l.runID) loaded dedupe \(l.upstreamRunID ?? "-"), not the current")
            }
            // Every published load is verified (a load killed before its verify.json is verified by the rerun).
            let verify = try? AtomicFile.readJSON(
                VerifyReport.self, from: work.runDirectory(.load, l.runID) + "/verify.json")
            if complete, verify?.passed != true {
                audit.problems.append("load \(l.runID): verify.json is missing or did not pass")
            }
        }
        if let r = current[.refresh], r.upstreamRunID != current[.load]?.runID {
            audit.problems.append("refresh \(r.runID) followed load \(r.upstreamRunID ?? "-"), not the current")
        }
        return audit
    }

    /// Copies the work dir (to restore a state before a stage).
    func snapshotWork(to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        if FileManager.default.fileExists(atPath: work) {
            try FileManager.default.copyItem(atPath: work, toPath: path)
        } else {
            try AtomicFile.makeDirectory(path)
        }
    }

    /// Replaces the work dir with a snapshot.
    func restoreWork(from path: String) throws {
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.copyItem(atPath: path, toPath: work)
    }
}

/// Whether a process holds an `flock` (from `/proc/locks`, without touching the lock, so the stage never sees a
/// competitor): every stage takes the work-dir lock first and keeps it to its end.
enum ProcLocks {
    static var available: Bool { FileManager.default.isReadableFile(atPath: "/proc/locks") }

    static func holdsFlock(_ pid: pid_t) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return false }
        let wanted = String(pid)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count > 4, fields[1] == "FLOCK", fields[4] == wanted { return true }
        }
        return false
    }
}

/// Whether this process may mount file systems (root with CAP_SYS_ADMIN): tried once with a 4 KiB tmpfs.
/// `BEMS_TEST_NO_MOUNT=1` says no (to run the unprivileged variants).
enum MountPermission {
    static let available: Bool = {
        guard geteuid() == 0, ProcessInfo.processInfo.environment["BEMS_TEST_NO_MOUNT"] != "1" else { return false }
        let dir = NSTemporaryDirectory() + "bems-mount-probe-" + String(UInt32.random(in: 0...UInt32.max))
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard shell(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", dir]) == 0 else { return false }
        _ = shell(["umount", dir])
        return true
    }()
}

/// Runs a system command (found on the PATH) to its end, output discarded; returns the exit status.
@discardableResult
func shell(_ arguments: [String]) -> Int32 {
    let command = ["/usr/bin/env"] + arguments
    guard
        let child = try? ChildProcess(
            command, environment: ProcessInfo.processInfo.environment, output: "/dev/null", errors: "/dev/null")
    else { return -1 }
    return child.wait()
}

/// The database content of an uninterrupted pipeline run on `days` generated days, computed once per process in a
/// schema of its own and shared by the fault tests that compare against it.
enum ReferenceContent {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: PipelineHarness.Content] = [:]

    static func of(days: Int) throws -> PipelineHarness.Content {
        try lock.withLock {
            if let known = cache[days] { return known }
            let h = try PipelineHarness(days: days)
            defer { h.remove() }
            for run in try h.runPipeline() where run.status != 0 {
                throw PipelineError(.unexpected, "reference \(run.stage) exited \(run.status): \(run.stderr)")
            }
            let content = try h.content()
            cache[days] = content
            return content
        }
    }
}
