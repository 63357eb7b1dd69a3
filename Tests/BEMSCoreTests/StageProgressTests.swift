import Foundation
import Logging
import Testing

@testable import BEMSCore

/// A clock and an output the tests move and read by hand.
final class ProgressRig: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var _now = 100.0
    private var _output: [String] = []
    private var _throttled = 0.0

    var now: Double {
        get { lock.withLock { _now } }
        set { lock.withLock { _now = newValue } }
    }
    var throttled: Double {
        get { lock.withLock { _throttled } }
        set { lock.withLock { _throttled = newValue } }
    }
    var output: [String] { lock.withLock { _output } }

    func progress(_ stage: String, _ mode: StageProgress.Mode, logger: Logger? = nil) -> StageProgress {
        StageProgress(
            stage: stage, mode: mode, logger: logger, write: { s in self.lock.withLock { self._output.append(s) } },
            clock: { self.now })
    }
}

@Suite struct StageProgressTests {
    @Test func aTerminalLineShowsPercentRowsRatesAndETAAndEndsWithANewline() {
        let rig = ProgressRig()
        let p = rig.progress("validate", .terminal)
        p.tick()  // before the stage begins its work (or when it is up to date): nothing
        #expect(rig.output.isEmpty)
        p.begin(total: .bytes(4_000_000))
        rig.now += 2
        p.advance(rows: 12_345, bytes: 1_000_000)
        p.tick()
        #expect(rig.output == ["\rvalidate   25.0%  12,345 rows  6.2k rows/s  0.5 MB/s  ETA 0:06"])
        rig.now += 2
        p.advance(rows: 1, bytes: 3_000_000)
        p.finish()
        // Redrawn in place, then the line ends.
        #expect(rig.output.last == "\rvalidate  100.0%  12,346 rows  3.1k rows/s  1.0 MB/s  ETA 0:00\n")
        p.finish()  // a second finish draws nothing more
        #expect(rig.output.count == 2)
    }

    @Test func withoutATotalTheLineShowsTheTimeTakenAndNoPercent() {
        let rig = ProgressRig()
        let p = rig.progress("refresh", .terminal)
        p.begin(total: .unknown)
        rig.now += 75
        p.tick()
        #expect(rig.output == ["\rrefresh  working  1:15"])
        p.advance(rows: 123_456)
        p.tick()
        #expect(rig.output.last == "\rrefresh  123,456 rows  1.6k rows/s  1:15")
        p.begin(total: .unknown)  // a new attempt: a shorter line, padded over the one before
        p.tick()
        #expect(rig.output.last == "\rrefresh  working  0:00" + String(repeating: " ", count: 18))
        p.clearLine()
        #expect(rig.output.last == "\r" + String(repeating: " ", count: 22) + "\r")
        p.clearLine()  // nothing drawn since: nothing to clear
        #expect(rig.output.count == 4)
    }

    @Test func notOnATerminalItLogsAProgressLineEveryFewSeconds() {
        let rig = ProgressRig()
        let log = CapturedLog()
        let p = rig.progress("dedupe", .log(every: 5), logger: log.logger)
        p.begin(total: .rows(1_000))
        rig.now += 1
        p.advance(rows: 100)
        p.tick()
        #expect(log.messages.isEmpty)
        rig.now += 4
        p.advance(rows: 400, bytes: 2_000_000)
        p.tick()
        rig.now += 1
        p.tick()  // not due again yet
        #expect(log.messages == ["dedupe progress"])
        let m = log.recorded[0]
        #expect(m["percent"] == "50.0" && m["rows"] == "500" && m["rows.per.second"] == "100")
        #expect(m["eta.seconds"] == "5" && m["mb.per.second"] == "0.4" && m["state"] == "running")
        #expect(rig.output.isEmpty)
        p.finish()  // the stage logs its own summary: no final progress line
        #expect(log.messages.count == 1)
    }

    @Test func throttledAndRetryingStatesShowWhileTheyLast() {
        let rig = ProgressRig()
        let log = CapturedLog()
        let p = rig.progress("load", .log(every: 1), logger: log.logger)
        p.watchThrottling { rig.throttled }
        p.begin(total: .rows(100))
        rig.now += 1
        rig.throttled = 0.4
        p.tick()
        #expect(log.messages.last == "load progress: throttled by the rate limits")
        #expect(log.recorded.last?["throttled.seconds"] == "0.4")
        rig.now += 2  // the limiters waited no more: running again
        p.tick()
        #expect(log.messages.last == "load progress")
        p.noteRetry()
        rig.now += 1
        p.tick()
        #expect(log.messages.last == "load progress: retrying after a transient database error")
        #expect(log.recorded.last?["retries"] == "1")
        rig.now += 1
        p.advance(rows: 10)
        #expect(p.snapshot().activity == .running)
        let line = ProgressSnapshot(total: .rows(10), rows: 1, bytes: 0, seconds: 1, activity: .throttled)
        #expect(line.terminalLine(stage: "load").hasSuffix("throttled"))
    }

    @Test func aPhaseAfterTheRowsKeepsTheirRateAndShowsItsOwnTime() {
        let rig = ProgressRig()
        let p = rig.progress("load", .terminal)
        p.enterPhase("ignored")  // before the stage begins: nothing to show, and no phase
        #expect(p.snapshot().phase == nil)
        p.begin(total: .rows(1_000_000))
        rig.now += 4
        p.advance(rows: 1_000_000, bytes: 8_000_000)
        rig.now += 1  // a second after the last rows
        p.enterPhase("building indexes")
        rig.now += 70
        p.tick()
        // The rate is the rows' (1 M in 4 s), not one that falls while the indexes build; no ETA.
        #expect(rig.output.last == "\rload  100.0%  1,000,000 rows  250.0k rows/s  2.0 MB/s  building indexes 1:10")
        #expect(p.snapshot().etaSeconds == nil && p.snapshot().seconds == 4)
        p.enterPhase("verifying")
        rig.now += 3
        #expect(p.snapshot().phase?.name == "verifying" && p.snapshot().phase?.seconds == 3)

        let log = CapturedLog()
        let logged = rig.progress("load", .log(every: 1), logger: log.logger)
        logged.begin(total: .rows(10))
        rig.now += 2
        logged.advance(rows: 10)
        logged.enterPhase("analyzing")
        rig.now += 5
        logged.tick()
        #expect(log.messages == ["load progress: analyzing"])
        let m = log.recorded[0]
        #expect(m["phase"] == "analyzing" && m["phase.seconds"] == "5.0" && m["rows.per.second"] == "5")
        #expect(m["eta.seconds"] == nil && m["percent"] == "100.0")
        logged.begin(total: .rows(10))  // a new attempt leaves the phase
        #expect(logged.snapshot().phase == nil)
    }

    @Test func quietDrawsNothingButKeepsChunkTimingsAndPeaks() {
        let rig = ProgressRig()
        let p = rig.progress("load", .quiet)
        p.begin(total: .rows(10_000))
        for _ in 0..<4 {
            rig.now += 1
            p.transfer(rows: 1_000, bytes: 50_000)
            p.tick()
        }
        rig.now += 2
        p.transfer(rows: 6_000, bytes: 600_000)  // a burst: 3 000 rows/s over 2 s
        p.advance(rows: 10_000)  // committed: counts for the share, not for the rates sent
        p.recordChunk(seconds: 0.5)
        p.recordChunk(seconds: 1.25)
        p.finish()
        #expect(rig.output.isEmpty)
        #expect(p.chunkSeconds == [0.5, 1.25])
        #expect(p.peaks.rowsPerSecond == 3_000 && p.peaks.bytesPerSecond == 300_000)
        #expect(p.snapshot().rows == 10_000 && p.snapshot().bytes == 800_000 && p.snapshot().fraction == 1)
        #expect(StageProgress.silent.mode == .quiet)
    }

    @Test func aShortRunStillGetsAPeakFromItsFinalSample() {
        let rig = ProgressRig()
        let p = rig.progress("load", .quiet)
        p.begin(total: .rows(10))
        rig.now += 0.5
        p.transfer(rows: 5, bytes: 500)
        p.finish()
        #expect(p.peaks.rowsPerSecond == 10 && p.peaks.bytesPerSecond == 1_000)
        let q = rig.progress("load", .quiet)
        q.begin(total: .rows(10))
        rig.now += 0.2
        q.transfer(rows: 8, bytes: 8)
        q.finish()  // too short to measure a rate
        #expect(q.peaks.rowsPerSecond == 0)
    }

    @Test func aNewAttemptRestartsTheCounts() {
        let rig = ProgressRig()
        let p = rig.progress("dedupe", .quiet)
        p.begin(total: .rows(100))
        p.advance(rows: 60)
        p.begin(total: .rows(100))
        #expect(p.snapshot().rows == 0)
        #expect(p.snapshot().fraction == 0)
    }

    @Test func modesFollowQuietAndTheTerminal() {
        #expect(StageProgress.mode(quiet: true, isTerminal: true, every: 5) == .quiet)
        #expect(StageProgress.mode(quiet: false, isTerminal: true, every: 5) == .terminal)
        #expect(StageProgress.mode(quiet: false, isTerminal: false, every: 3) == .log(every: 3))
    }

    @Test func snapshotArithmeticAndFormats() {
        var s = ProgressSnapshot(total: .bytes(0), rows: 0, bytes: 0, seconds: 0)
        #expect(s.fraction == 1 && s.etaSeconds == nil && s.rowsPerSecond == 0 && s.bytesPerSecond == 0)
        s.total = .rows(0)
        #expect(s.fraction == 1)
        s.total = .rows(10)
        s.rows = 20  // retried work can pass the total: the share stops at 100%
        s.seconds = 4
        #expect(s.fraction == 1 && s.etaSeconds == 0)
        #expect(ProgressSnapshot.grouped(0) == "0" && ProgressSnapshot.grouped(999) == "999")
        #expect(ProgressSnapshot.grouped(1_000) == "1,000" && ProgressSnapshot.grouped(-1_234_567) == "-1,234,567")
        #expect(ProgressSnapshot.compact(950) == "950" && ProgressSnapshot.compact(12_345) == "12.3k")
        #expect(ProgressSnapshot.compact(4_560_000) == "4.56M")
        #expect(ProgressSnapshot.clock(7) == "0:07" && ProgressSnapshot.clock(754) == "12:34")
        #expect(ProgressSnapshot.clock(3_723) == "1:02:03")
    }

    @Test func theTimerDrawsOnItsOwn() async throws {
        let lines = LockedLines()
        let p = StageProgress(stage: "normalize", mode: .terminal, write: { lines.append($0) })
        p.begin(total: .bytes(100))
        p.start()
        p.start()  // idempotent
        p.advance(rows: 1, bytes: 50)
        try await Task.sleep(for: .milliseconds(700))
        p.finish()
        #expect(lines.all.count >= 2)
        #expect(lines.all.last?.hasSuffix("\n") == true)
        #expect(lines.all.allSatisfy { $0.hasPrefix("\rnormalize   50.0%") })
    }
}

@Suite struct BandwidthReportTests {
    @Test func warnsWhenAPeakReachesTheShareOfALimit() {
        var b = BandwidthReport(
            rowsPerSecondLimit: 50_000, bytesPerSecondLimit: 10_485_760, peakRowsPerSecond: 41_000,
            peakBytesPerSecond: 2_097_152, throttledSeconds: 1.5)
        #expect(b.rowsShare == 0.82 && b.bytesShare == 0.2)
        let alerts = b.alerts(name: "load (dev, run r1)", share: 0.8)
        #expect(alerts.count == 1)
        #expect(alerts[0].kind == "bandwidth" && alerts[0].severity == .warning)
        #expect(alerts[0].message == "load (dev, run r1): peak 41000 rows/s, 82.0% of the rowsPerSecond limit 50000 (throttled 1.5 s)")
        b.peakBytesPerSecond = 9_437_184
        #expect(b.alerts(name: "x", share: 0.8).last?.message == "x: peak 9.0 MB/s, 90.0% of the bytesPerSecond limit 10.0 MB/s (throttled 1.5 s)")
        b = BandwidthReport(
            rowsPerSecondLimit: nil, bytesPerSecondLimit: 0, peakRowsPerSecond: 9e9, peakBytesPerSecond: 9e9,
            throttledSeconds: 0)
        #expect(b.rowsShare == nil && b.bytesShare == 0 && b.alerts(name: "x", share: 0.8).isEmpty)
    }

    @Test func theAlertRulesAndTheMetricsCarryIt() {
        var report = RunReport(
            stage: .load, runID: "r1", env: "dev", status: .succeeded, exitStatus: 0, startedAt: Date(timeIntervalSince1970: 0),
            finishedAt: Date(timeIntervalSince1970: 1))
        report.bandwidth = BandwidthReport(
            rowsPerSecondLimit: 100, bytesPerSecondLimit: nil, peakRowsPerSecond: 95, peakBytesPerSecond: 10,
            throttledSeconds: 2)
        #expect(AlertRules.evaluate(report, thresholds: AlertThresholds()).map(\.kind) == ["bandwidth"])
        let text = RunMetrics.exposition(report)
        #expect(text.contains("bems_load_peak_rows_per_second{env=\"dev\",stage=\"load\"} 95"))
        #expect(text.contains("bems_load_rate_limit_rows_per_second{env=\"dev\",stage=\"load\"} 100"))
        #expect(text.contains("bems_load_throttled_seconds{env=\"dev\",stage=\"load\"} 2"))
        #expect(!text.contains("bems_load_rate_limit_bytes_per_second"))
        let data = try! JSONEncoder().encode(report)
        #expect(try! JSONDecoder().decode(RunReport.self, from: data) == report)
    }
}

/// Lines written by a progress timer.
final class LockedLines: @unchecked Sendable {
    // @unchecked: `lines` is read and written under `lock`.
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) { lock.withLock { lines.append(s) } }
    var all: [String] { lock.withLock { lines } }
}

/// A logger that keeps its messages and metadata.
final class CapturedLog: LogHandler, @unchecked Sendable {
    // @unchecked: the records are read and written under `lock`.
    private let lock = NSLock()
    private var records: [(String, Logger.Metadata)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lock.withLock { records.append(("\(event.message)", event.metadata ?? [:])) } }
    var logger: Logger { Logger(label: "t", factory: { _ in self }) }
    var messages: [String] { lock.withLock { records.map(\.0) } }
    var recorded: [Logger.Metadata] { lock.withLock { records.map(\.1) } }
}
