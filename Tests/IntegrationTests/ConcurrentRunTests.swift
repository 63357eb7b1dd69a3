import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// Two whole pipelines (validate through refresh, the built executables, each stopping at its first failure) started
/// at the same moment against the same database: on the same work dir (the work-dir `flock`) and on two work dirs
/// (the load's advisory lock, then the ledger and the unique key). Nothing is ever duplicated, the content is exact,
/// and the pipeline that lost finishes on a plain rerun.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct ConcurrentRunTests {
    /// Runs one pipeline per work dir at once (each on its own thread, released together; pipeline `i` starts
    /// `i * stagger` seconds later).
    static func race(_ h: PipelineHarness, works: [String], stagger: Double = 0) throws -> [[PipelineHarness.StageRun]]
    {
        final class Box: @unchecked Sendable {
            // @unchecked: written under `lock`, read after every thread is done.
            let lock = NSLock()
            var results: [[PipelineHarness.StageRun]]
            var errors: [String] = []
            init(_ n: Int) { results = Array(repeating: [], count: n) }
        }
        let box = Box(works.count)
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for (i, work) in works.enumerated() {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                start.wait()
                if i > 0, stagger > 0 { usleep(UInt32(Double(i) * stagger * 1e6)) }
                var runs: [PipelineHarness.StageRun] = []
                do {
                    for stage in Stage.allCases {
                        let run = try h.run(stage, work: work)
                        runs.append(run)
                        if run.status != 0 { break }
                    }
                } catch {
                    box.lock.withLock { box.errors.append("\(error)") }
                }
                box.lock.withLock { box.results[i] = runs }
            }
        }
        for _ in works { start.signal() }
        done.wait()
        if !box.errors.isEmpty { throw PipelineError(.unexpected, box.errors.joined(separator: "; ")) }
        return box.results
    }

    static func finished(_ runs: [PipelineHarness.StageRun]) -> Bool {
        runs.count == Stage.allCases.count && runs.allSatisfy { $0.status == 0 }
    }

    static func summary(_ runs: [PipelineHarness.StageRun]) -> String {
        runs.map { "\($0.stage)=\($0.status)" }.joined(separator: " ")
    }

    /// No key twice, and exactly the reference content.
    static func expectExact(_ h: PipelineHarness, _ reference: PipelineHarness.Content) throws {
        let content = try h.content()
        #expect(content.readings == content.distinctKeys)
        #expect(content == reference)
    }

    /// Started together (the second refuses at its first stage), or the second 0.4 s later (while the first is in
    /// dedupe or load: the second meets the lock at whichever stage overlaps).
    @Test(arguments: [0.0, 0.4])
    func twoPipelinesOnOneWorkDirOneRefusesWith73(stagger: Double) async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run {
            let reference = try ReferenceContent.of(days: 1)
            let h = try PipelineHarness(days: 1)
            defer { h.remove() }
            let results = try Self.race(h, works: [h.work, h.work], stagger: stagger)
            #expect(results.contains(where: Self.finished), "\(results.map(Self.summary))")
            for runs in results where !Self.finished(runs) {
                // The other one stopped at the stage that found the work dir locked, with 73 and the reason.
                let last = try #require(runs.last)
                #expect(last.status == 73, "\(Self.summary(runs)): \(last.stderr)")
                #expect(last.stderr.contains("another bems run is using this work directory"), "\(last.stderr)")
            }
            try Self.expectExact(h, reference)
            #expect(try h.ledgerProblems().isEmpty)
            let audit = PipelineHarness.audit(h.work, complete: true)
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            // A refused stage never started a run: one run folder per stage that ran.
            let runs = Stage.allCases.map { WorkDir(root: h.work).runIDs($0).count }
            #expect(runs.allSatisfy { $0 >= 1 && $0 <= 2 }, "\(runs)")
            #expect(audit.abandonedRuns.isEmpty, "\(audit.abandonedRuns)")
            Logger(label: "test.concurrent").notice(
                "same work dir", metadata: ["stagger": "\(stagger)", "pipelines": "\(results.map(Self.summary))"])
        }
    }

    @Test func twoPipelinesOnTwoWorkDirsNeverDuplicateAndTheLoserFinishesOnARerun() async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run {
            let reference = try ReferenceContent.of(days: 1)
            let h = try PipelineHarness(days: 1)
            defer { h.remove() }
            let works = [h.root + "/work-a", h.root + "/work-b"]
            let results = try Self.race(h, works: works)
            var outcomes: [String] = results.map(Self.summary)
            for runs in results {
                // validate, normalize and dedupe never collide (two work dirs); the loads meet at the advisory lock:
                // the second waits up to 5 s, then either refuses (73) or finds its readings loaded already (65).
                for run in runs.prefix(3) { #expect(run.status == 0, "\(run.stage): \(run.stderr)") }
                let load = try #require(runs.first { $0.stage == "load" })
                #expect([0, 65, 73].contains(load.status), "\(load.stderr)")
                if load.status == 65 {
                    #expect(load.stderr.contains("rerun bems-dedupe, then bems-load"), "\(load.stderr)")
                }
                if load.status == 73 {
                    #expect(load.stderr.contains("another bems load or load rollback is running"), "\(load.stderr)")
                }
            }
            #expect(results.contains(where: Self.finished), "\(outcomes)")
            try Self.expectExact(h, reference)

            // The loser reruns its pipeline as is (make refresh). After a 65 its dedupe run is marked stale, so the
            // rerun classifies again and finishes; after a 73 the first rerun meets the loaded readings (65), the
            // second finishes. The content stays exact.
            for (runs, work) in zip(results, works) where !Self.finished(runs) {
                let firstLoad = runs.first { $0.stage == "load" }?.status
                for attempt in 1...3 {
                    var rerun: [PipelineHarness.StageRun] = []
                    for stage in Stage.allCases {
                        let run = try h.run(stage, work: work)
                        rerun.append(run)
                        if run.status != 0 { break }
                    }
                    outcomes.append("rerun \(attempt): " + Self.summary(rerun))
                    if rerun.allSatisfy({ $0.status == 0 }) { break }
                    let failed = rerun.last!
                    #expect(
                        attempt == 1 && firstLoad == 73 && failed.stage == "load" && failed.status == 65,
                        "\(Self.summary(rerun)): \(failed.stderr)")
                    if attempt > 1 { break }
                }
                let audit = PipelineHarness.audit(work, complete: true)
                #expect(audit.problems.isEmpty, "\(audit.problems)")
            }
            try Self.expectExact(h, reference)
            for work in works {
                let load = try #require(try WorkDir(root: work).currentManifest(.load))
                #expect(load.upstreamRunID == WorkDir(root: work).currentRunID(.dedupe))
            }
            Logger(label: "test.concurrent").notice("two work dirs", metadata: ["pipelines": "\(outcomes)"])
        }
    }
}
