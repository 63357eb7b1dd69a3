import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// SIGKILLs each stage executable at 20 points spread over its work, then reruns it and the rest of the pipeline.
///
/// Per stage: one uninterrupted pipeline run on 1 day x 2 floors (about 50 k readings) is the reference (database
/// content, and how long the stage holds its work-dir lock). Then, for each point, the work dir is put back as it was
/// before the stage (and the schema emptied; for refresh, the view emptied or the ledger's refreshes forgotten), the
/// stage is started, and SIGKILLed while it holds the work-dir lock (seen in `/proc/locks`; every stage takes it first
/// and holds it to its end):
/// - progress-based points: the moment its manifest is being written, is written but not current, `CURRENT` is being
///   written, the run is published, and one stage-specific step (report, first chunk, verify.json);
/// - time-based points for the rest: delays after the lock was taken, spread over the reference run's lock time.
/// A kill that comes after the stage let go of the lock (or exited) did not interrupt it and does not count: a
/// time-based point is then retried with a shorter delay, a progress-based one once more. After each kill:
/// - the crashed state is consistent (every manifest parses, every chunk a manifest names verifies, `CURRENT` names
///   a published run, and the table holds exactly what the committed chunks inserted);
/// - rerunning the stage and the later ones exits 0 each, and the database holds exactly the reference content
///   (count, md5 of every value, aggregates, indexes), each chunk of the current dedupe run committed once, and
///   the current manifests agree with each other.
///
/// `BEMS_KILL_POINTS` changes the number of points (default 20).
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(10)))
struct StageKillTests {
    static let points = Int(ProcessInfo.processInfo.environment["BEMS_KILL_POINTS"] ?? "") ?? 20

    @Test(arguments: Stage.allCases)
    func killedStageRerunConvergesToTheReference(stage: Stage) async throws {
        try PipelineHarness.requireExecutables()
        try #require(ProcLocks.available, "/proc/locks is needed to see when the stage holds its work-dir lock")
        let points = Self.points
        let report = try await ExclusiveLoadTests.shared.run {
            try await onOwnThread { try KillLoop(stage: stage, points: points).run() }
        }
        for failure in report.failures.prefix(10) { Issue.record(Comment(rawValue: failure)) }
        #expect(report.failures.isEmpty, "\(report.failures.count) failures")
        #expect(report.interrupted >= points, "only \(report.interrupted) kills interrupted \(stage.rawValue)")
        Logger(label: "test.kill").notice(
            "stage kills",
            metadata: [
                "stage": "\(stage.rawValue)", "interrupted": "\(report.interrupted)", "attempts": "\(report.attempts)",
                "window.ms": "\(Int(report.windowSeconds * 1000))", "delays.ms": "\(report.delays)",
                "events": "\(report.events)",
                "phases":
                    "\(report.phases.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))",
                "leftover.temp": "\(report.tempFiles)", "abandoned.runs": "\(report.abandonedRuns)",
                "seconds": "\(String(format: "%.1f", report.seconds))",
            ])
    }
}

/// The kill-and-rerun loop of one stage (runs on its own thread; collects failures instead of recording issues).
final class KillLoop: @unchecked Sendable {
    // @unchecked: used by one thread only.
    struct Report: Sendable {
        var interrupted = 0
        var attempts = 0
        var windowSeconds = 0.0
        /// Kill delays after the lock was taken, in ms, of the time-based kills that interrupted the stage.
        var delays: [Int] = []
        /// The progress events at which a kill interrupted the stage.
        var events: [String] = []
        /// Where the kills landed (what the stage had done), with counts.
        var phases: [String: Int] = [:]
        var failures: [String] = []
        /// Leftover temporary files and crashed run folders seen after the kills (never used by a later run).
        var tempFiles = 0
        var abandonedRuns = 0
        var seconds = 0.0
    }

    let stage: Stage
    let points: Int
    let harness: PipelineHarness
    var report = Report()

    init(stage: Stage, points: Int) throws {
        self.stage = stage
        self.points = points
        harness = try PipelineHarness()
    }

    var later: [Stage] { Stage.allCases.filter { $0.logicIndex >= stage.logicIndex } }

    func run() throws -> Report {
        let started = ContinuousClock.now
        defer { harness.remove() }
        let h = harness
        let before = h.root + "/before-\(stage.rawValue)"

        // Reference run; the stage itself is watched to learn how long it holds the lock.
        var window = 0.0
        for s in Stage.allCases {
            if s == stage {
                try h.snapshotWork(to: before)
                let watched = try watch()
                guard watched.status == 0, let held = watched.held else {
                    report.failures.append(
                        "reference \(s.rawValue) exited \(watched.status) (lock seen: \(watched.held != nil))")
                    return report
                }
                window = held
            } else {
                let r = try h.run(s)
                guard r.status == 0 else {
                    report.failures.append("reference \(s.rawValue) exited \(r.status): \(r.stderr)")
                    return report
                }
            }
        }
        report.windowSeconds = window
        let reference = try h.content()
        guard reference.readings > 0, reference.aggregates > 0 else {
            report.failures.append("empty reference: \(reference)")
            return report
        }
        // The same as every other uninterrupted run of these inputs (so a wrong reference cannot hide a bug).
        let shared = try ReferenceContent.of(days: 1)
        if reference != shared { report.failures.append("reference \(reference) differs from \(shared)") }

        // Progress-based points first: the short windows at the end of a run (manifest being written, written but
        // not current, CURRENT being written, published), which evenly spread delays seldom hit. Two tries each.
        for event in events() {
            for _ in 0..<2 {
                let runsBefore = try prepareAttempt(before: before)
                let status = try killAfterLock(at: .event(event.name, event.happened), runsBefore: runsBefore)
                guard status == 128 + SIGKILL else {
                    noteUndisturbed(status)
                    continue
                }
                report.events.append(event.name)
                try afterKill(runsBefore: runsBefore, reference: reference)
                break
            }
        }
        // Time-based points: delays after the lock was taken, spread evenly over the reference run's lock time.
        let timed = max(0, points - report.interrupted)
        var point = 0
        var delay = window * 0.5 / Double(max(timed, 1))
        while point < timed, report.attempts < points * 3 {
            let runsBefore = try prepareAttempt(before: before)
            let status = try killAfterLock(at: .delay(delay), runsBefore: runsBefore)
            guard status == 128 + SIGKILL else {
                // Finished (or let go of the lock) before the kill: try the same point earlier.
                noteUndisturbed(status)
                delay *= 0.6
                continue
            }
            report.delays.append(Int((delay * 1000).rounded()))
            try afterKill(runsBefore: runsBefore, reference: reference)
            point += 1
            delay = window * (Double(point) + 0.5) / Double(timed)
        }
        report.seconds = PipelineHarness.seconds(since: started)
        return report
    }

    /// A kill point: a delay after the lock was taken, or the first moment an event is seen in the work dir.
    enum KillPoint {
        case delay(Double)
        case event(String, (_ run: String?) -> Bool)
    }

    /// Progress events of the stage, each a predicate on its new run (`nil` until its folder exists).
    func events() -> [(name: String, happened: (String?) -> Bool)] {
        let work = WorkDir(root: harness.work)
        let fm = FileManager.default
        let stageDir = work.stageDirectory(stage)
        let stage = self.stage
        func files(_ dir: String) -> [String] { (try? fm.contentsOfDirectory(atPath: dir)) ?? [] }
        func inRun(_ run: String?, _ test: ([String]) -> Bool) -> Bool {
            guard let run else { return false }
            return test(files(work.runDirectory(stage, run)))
        }
        var list: [(name: String, happened: (String?) -> Bool)] = [
            ("manifest being written", { run in inRun(run) { $0.contains { $0.hasPrefix(".manifest.json.tmp") } } }),
            ("manifest written, CURRENT not yet", { run in inRun(run) { $0.contains("manifest.json") } }),
            ("CURRENT being written", { _ in files(stageDir).contains { $0.hasPrefix(".CURRENT.tmp") } }),
            ("published", { run in run != nil && work.currentRunID(stage) == run }),
        ]
        switch stage {
        case .validate, .dedupe, .refresh:
            list.append(
                ("report being written", { run in inRun(run) { $0.contains { $0.hasPrefix(".report.json.tmp") } } }))
        case .normalize:
            list.append(
                (
                    "first chunk written",
                    { run in
                        guard let run else { return false }
                        return files(work.runDirectory(stage, run) + "/chunks").contains {
                            $0.hasSuffix(".bemc") && !$0.hasPrefix(".")
                        }
                    }
                ))
        case .load:
            list.append(
                (
                    "verify.json being written",
                    { run in inRun(run) { $0.contains { $0.hasPrefix(".verify.json.tmp") } } }
                ))
        }
        return list
    }

    /// Puts the state back as before the stage; returns the stage's run ids then.
    func prepareAttempt(before: String) throws -> Set<String> {
        report.attempts += 1
        try restore(before: before, variant: report.attempts)
        return Set(WorkDir(root: harness.work).runIDs(stage))
    }

    func noteUndisturbed(_ status: Int32) {
        if status != 0 && status != 128 + SIGKILL {
            report.failures.append("\(stage.rawValue) exited \(status) in an undisturbed attempt")
        }
    }

    /// Records where the kill landed, checks the crashed state, reruns and checks the result.
    func afterKill(runsBefore: Set<String>, reference: PipelineHarness.Content) throws {
        let point = report.interrupted
        report.interrupted += 1
        report.phases[try phase(runsBefore: runsBefore), default: 0] += 1
        checkCrashedState(point: point)
        rerunAndCheck(reference: reference, point: point)
    }

    /// Runs the stage uninterrupted, polling `/proc/locks`: the exit status and how long it held the lock.
    func watch() throws -> (status: Int32, held: Double?) {
        let (child, log) = try harness.spawn(harness.arguments(stage))
        defer { try? FileManager.default.removeItem(atPath: log) }
        var taken: ContinuousClock.Instant?
        var released: ContinuousClock.Instant?
        while child.poll() == nil {
            let holds = ProcLocks.holdsFlock(child.pid)
            if holds, taken == nil { taken = .now }
            if !holds, taken != nil, released == nil { released = .now }
            usleep(300)
        }
        let end = released ?? .now
        guard let taken else { return (child.wait(), nil) }
        let d = end - taken
        return (child.wait(), Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }

    /// Starts the stage, waits until it holds the work-dir lock, then until the kill point, and SIGKILLs it if it
    /// still holds the lock. Returns the exit status: 137 only when the kill interrupted the stage.
    func killAfterLock(at point: KillPoint, runsBefore: Set<String>) throws -> Int32 {
        let (child, log) = try harness.spawn(harness.arguments(stage))
        defer { try? FileManager.default.removeItem(atPath: log) }
        let work = WorkDir(root: harness.work)
        var taken: ContinuousClock.Instant?
        var killed = false
        while child.poll() == nil {
            let holds = ProcLocks.holdsFlock(child.pid)
            if taken == nil, holds { taken = .now }
            if let taken {
                if !holds { break }  // let go of the lock: the stage is done, only exiting
                let due: Bool
                switch point {
                case .delay(let delay):
                    due = PipelineHarness.seconds(since: taken) >= delay
                case .event(_, let happened):
                    due = happened(work.runIDs(stage).last { !runsBefore.contains($0) })
                }
                if due {
                    kill(child.pid, SIGKILL)
                    killed = true
                    break
                }
            }
            usleep(100)
        }
        let status = child.wait()
        return killed ? status : (status == 128 + SIGKILL ? -1 : status)
    }

    /// Puts the work dir (and the database) back to their state before the stage.
    func restore(before: String, variant: Int) throws {
        let h = harness
        try h.restoreWork(from: before)
        guard stage == .refresh else {
            try h.resetSchema()
            return
        }
        // The loaded schema stays. Either the table is emptied (the refresh recomputes it in full), or the
        // ledger forgets the refreshes (the refresh runs again, incrementally, with no sensor-days left to take).
        if variant % 2 == 0 {
            try h.db.exec("TRUNCATE daily_aggregates")
        } else {
            try h.db.exec("DELETE FROM runs WHERE stage = 'refresh'")
        }
    }

    /// What the killed stage had done: from its run folder, and for load the ledger.
    func phase(runsBefore: Set<String>) throws -> String {
        let work = WorkDir(root: harness.work)
        guard let run = work.runIDs(stage).last(where: { !runsBefore.contains($0) }) else {
            if stage == .load {
                let tables = try harness.db.exec("SELECT to_regclass('loaded_chunks') IS NOT NULL").scalar() == "t"
                return tables ? "setup done, no run yet" : "checksums or setup"
            }
            return "locked, no run folder yet"
        }
        if work.currentRunID(stage) == run { return "published" }
        let dir = work.runDirectory(stage, run)
        let fm = FileManager.default
        let inStage = (try? fm.contentsOfDirectory(atPath: work.stageDirectory(stage))) ?? []
        if inStage.contains(where: { $0.hasPrefix(".CURRENT.tmp") }) { return "CURRENT being written" }
        if fm.fileExists(atPath: dir + "/manifest.json") { return "manifest written, not current" }
        let inRun = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        if inRun.contains(where: { $0.hasPrefix(".manifest.json.tmp") }) { return "manifest being written" }
        switch stage {
        case .validate:
            if fm.fileExists(atPath: dir + "/report.json") { return "report written" }
            if fm.fileExists(atPath: dir + "/dead-letter.jsonl") { return "dead letters merged" }
            return "scanning"
        case .normalize, .dedupe:
            let files = (try? fm.contentsOfDirectory(atPath: dir + "/chunks")) ?? []
            let done = files.filter { !$0.hasPrefix(".") }.count
            if fm.fileExists(atPath: dir + "/report.json") { return "report written" }
            return "\(done) chunk(s) written\(files.contains { $0.hasPrefix(".") } ? " + a partial one" : "")"
        case .load:
            let (committed, _, _) = try harness.ledger()
            let total = try work.currentManifest(.dedupe)?.chunks.count ?? 0
            return committed == total ? "all chunks committed" : "\(committed)/\(total) chunks committed"
        case .refresh:
            return "refreshing"
        }
    }

    /// Right after the kill: the work dir is consistent, and the table holds exactly what committed chunks inserted.
    func checkCrashedState(point: Int) {
        let audit = PipelineHarness.audit(harness.work, complete: false)
        report.tempFiles += audit.tempFiles.count
        report.abandonedRuns += audit.abandonedRuns.count
        for problem in audit.problems { report.failures.append("point \(point), after the kill: \(problem)") }
        guard stage == .load else { return }
        do {
            let (_, _, inserted) = try harness.ledger()
            let exists = try harness.db.exec("SELECT to_regclass('sensor_readings') IS NOT NULL").scalar() == "t"
            let rows = exists ? try harness.content().readings : 0
            if rows != inserted {
                report.failures.append("point \(point), after the kill: \(rows) rows but the ledger says \(inserted)")
            }
        } catch {
            report.failures.append("point \(point), after the kill: \(error)")
        }
    }

    /// Reruns the stage and the later ones; checks exit codes, database content, ledger and work dir.
    func rerunAndCheck(reference: PipelineHarness.Content, point: Int) {
        do {
            for run in try harness.runPipeline(later) where run.status != 0 {
                report.failures.append(
                    "point \(point): rerun of \(run.stage) exited \(run.status): \(run.stderr.suffix(600))")
                return
            }
            let content = try harness.content()
            if content != reference {
                report.failures.append("point \(point): content \(content), expected \(reference)")
            }
            for problem in try harness.ledgerProblems() { report.failures.append("point \(point): \(problem)") }
            for problem in PipelineHarness.audit(harness.work, complete: true).problems {
                report.failures.append("point \(point), after the rerun: \(problem)")
            }
        } catch {
            report.failures.append("point \(point): \(error)")
        }
    }
}

extension Stage {
    /// The position in the pipeline.
    var logicIndex: Int { Stage.allCases.firstIndex(of: self)! }
}
