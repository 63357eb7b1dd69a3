import Dispatch
import Foundation
import Logging

/// The live progress of one stage run, and what the run report needs from it: rows and bytes done, the state
/// (running, throttled by the rate limits, retrying after a transient database error), the phase after the rows (a
/// load's index rebuild and verify), each chunk's seconds and the peak rates for the bandwidth alert.
///
/// The stages call ``advance(rows:bytes:)``, ``recordChunk(seconds:)`` and ``noteRetry()`` from any thread; a timer
/// draws the progress:
/// - ``Mode/terminal``: one line on stderr, redrawn in place four times a second (rows, MB/s, %, ETA, state);
/// - ``Mode/log(every:)``: a `<stage> progress` notice every few seconds (stderr is not a terminal: a log, cron);
/// - ``Mode/quiet``: nothing is drawn; the figures are still kept for the run report.
package final class StageProgress: @unchecked Sendable {
    // @unchecked: `state` is read and written under `lock`; `timer` only by start/finish on the stage's thread.
    package enum Mode: Equatable, Sendable {
        case terminal
        case log(every: Double)
        case quiet
    }

    /// What the stage's total counts, for the percentage and the ETA.
    package enum Total: Equatable, Sendable {
        case bytes(Int)
        case rows(Int)
        case unknown
    }

    package let stage: String
    package let mode: Mode
    private let logger: Logger?
    private let write: @Sendable (String) -> Void
    private let clock: @Sendable () -> Double
    private let lock = NSLock()
    private var state: ProgressState
    private var timer: DispatchSourceTimer?
    private var throttledSeconds: (@Sendable () -> Double)?

    /// - Parameters:
    ///   - write: Where the terminal line goes (stderr).
    ///   - clock: Monotonic seconds (tests pass their own).
    package init(
        stage: String, mode: Mode, logger: Logger? = nil,
        write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
        clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    ) {
        self.stage = stage
        self.mode = mode
        self.logger = logger
        self.write = write
        self.clock = clock
        self.state = ProgressState(started: clock())
    }

    /// A progress that draws nothing (the default of every stage's options).
    package static var silent: StageProgress { StageProgress(stage: "", mode: .quiet, write: { _ in }) }

    /// The mode for a command: quiet with `--quiet`, a redrawn line when stderr is a terminal, else log lines.
    package static func mode(quiet: Bool, isTerminal: Bool, every: Double) -> Mode {
        if quiet { return .quiet }
        return isTerminal ? .terminal : .log(every: every)
    }

    /// True when stderr is a terminal that can redraw a line (not `TERM=dumb`).
    package static var stderrIsTerminal: Bool {
        isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    // MARK: - What the stages report

    /// Sets the total (the percentage and the ETA need it) and restarts the counts, e.g. for a retried attempt.
    package func begin(total: Total) {
        let now = clock()
        lock.withLock {
            state.total = total
            state.begun = true
            state.rows = 0
            state.bytes = 0
            state.phase = nil
            state.started = now
            state.windowStart = (now, state.sentRows, state.sentBytes)
        }
    }

    /// Counts work done: rows (CSV lines, or readings) and bytes (read, written or sent).
    package func advance(rows: Int = 0, bytes: Int = 0) {
        let now = clock()
        lock.withLock {
            state.rows += rows
            state.bytes += bytes
            state.lastAdvance = now
        }
    }

    /// Counts rows and bytes sent to the database (load's COPY buffers, as the rate limiters see them): the bytes
    /// count as work done, and both feed the peak rates of the bandwidth figures.
    package func transfer(rows: Int, bytes: Int) {
        let now = clock()
        lock.withLock {
            state.bytes += bytes
            state.sentRows += rows
            state.sentBytes += bytes
            state.lastAdvance = now
        }
    }

    /// Records one chunk's seconds (for the run report's p50/p95/max and the slow-chunk alert).
    package func recordChunk(seconds: Double) {
        lock.withLock { state.chunkSeconds.append(seconds) }
    }

    /// A transient database error is being retried: the state shows `retrying` until work advances again.
    package func noteRetry() {
        let now = clock()
        lock.withLock {
            state.retries += 1
            state.lastRetry = now
        }
    }

    /// The rows are done and the stage works on (a first load's index rebuild, `ANALYZE`, verify): from now on the
    /// progress names the phase and its time, and keeps the rates of the rows (they no longer fall while the phase
    /// runs, and there is no ETA).
    package func enterPhase(_ name: String) {
        let now = clock()
        lock.withLock {
            guard state.begun else { return }
            state.phase = (name, now, max(0, state.lastAdvance - state.started))
        }
    }

    /// The rate limiters' total wait, read at each tick: when it grew, the state shows `throttled`.
    package func watchThrottling(_ seconds: @escaping @Sendable () -> Double) {
        lock.withLock { throttledSeconds = seconds }
    }

    // MARK: - Reading it

    /// Each chunk's seconds, in the order they finished.
    package var chunkSeconds: [Double] { lock.withLock { state.chunkSeconds } }

    /// The highest rows/s and bytes/s sent (``transfer(rows:bytes:)``) over any window of at least
    /// ``ProgressState/peakWindow`` seconds.
    package var peaks: (rowsPerSecond: Double, bytesPerSecond: Double) {
        lock.withLock { (state.peakRowsPerSecond, state.peakBytesPerSecond) }
    }

    /// The figures now.
    package func snapshot() -> ProgressSnapshot {
        let now = clock()
        let throttled = throttledSeconds?() ?? 0
        return lock.withLock { state.snapshot(now: now, throttledSeconds: throttled) }
    }

    // MARK: - Drawing

    /// Starts the timer that draws the progress (nothing in quiet mode but the peak sampling).
    package func start() {
        guard timer == nil else { return }
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let interval: Double = mode == .terminal ? 0.25 : 0.5
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self] in self?.tick() }
        t.resume()
        timer = t
    }

    /// Stops the timer; on a terminal, draws the final figures and ends the line. Idempotent: the command calls it
    /// when the stage returns, before it prints its summary, and again when it ends.
    package func finish() {
        timer?.cancel()
        timer = nil
        tick(final: true)
    }

    /// One timer tick: samples the peak rates and draws when due. Also called by tests with their clock.
    package func tick(final: Bool = false) {
        let now = clock()
        let throttled = throttledSeconds?() ?? 0
        let output: (line: String?, log: ProgressSnapshot?) = lock.withLock {
            state.sample(now: now, final: final)
            let snapshot = state.snapshot(now: now, throttledSeconds: throttled)
            switch mode {
            case .quiet:
                return (nil, nil)
            case _ where !state.begun:  // nothing to show before the stage starts its work (or when up to date)
                return (nil, nil)
            case .terminal:
                guard final ? state.drawn : true else { return (nil, nil) }
                state.drawn = !final
                let line = snapshot.terminalLine(stage: stage)
                let pad = String(repeating: " ", count: max(0, state.lastWidth - line.count))
                state.lastWidth = final ? 0 : line.count
                return ("\r" + line + pad + (final ? "\n" : ""), nil)
            case .log(let every):
                guard !final, now - state.lastLog >= every else { return (nil, nil) }
                state.lastLog = now
                return (nil, snapshot)
            }
        }
        if let line = output.line { write(line) }
        if let snapshot = output.log {
            logger?.notice(
                Logger.Message(stringLiteral: snapshot.logMessage(stage: stage)), metadata: snapshot.logMetadata)
        }
    }

    /// Clears the terminal line before another message is written to stderr (the next tick redraws it).
    package func clearLine() {
        guard mode == .terminal else { return }
        let width: Int = lock.withLock {
            defer { state.lastWidth = 0 }
            return state.drawn ? state.lastWidth : 0
        }
        if width > 0 { write("\r" + String(repeating: " ", count: width) + "\r") }
    }
}

/// The counters behind ``StageProgress`` (a value type, so the arithmetic is testable on its own).
package struct ProgressState: Sendable {
    /// The shortest window the peak rates are measured over.
    package static let peakWindow = 2.0

    package var total: StageProgress.Total = .unknown
    package var rows = 0
    package var bytes = 0
    /// Sent to the database, for the peak rates (never restarted).
    package var sentRows = 0
    package var sentBytes = 0
    package var started: Double
    package var lastAdvance: Double
    package var lastRetry: Double?
    package var retries = 0
    package var chunkSeconds: [Double] = []
    package var peakRowsPerSecond = 0.0
    package var peakBytesPerSecond = 0.0
    /// Where the current peak window starts: (time, rows sent, bytes sent).
    package var windowStart: (Double, Int, Int)
    var lastThrottled = 0.0
    var throttledUntil = -Double.infinity
    var lastLog: Double
    var lastWidth = 0
    var drawn = false
    /// ``StageProgress/begin(total:)`` was called: the stage has work to do.
    var begun = false
    /// ``StageProgress/enterPhase(_:)``: its name, when it began, and the seconds the rows took.
    var phase: (name: String, since: Double, rowSeconds: Double)?

    package init(started: Double) {
        self.started = started
        self.lastAdvance = started
        self.lastLog = started
        self.windowStart = (started, 0, 0)
    }

    /// Takes a sample; when the window spans ``peakWindow`` seconds (or, for the `final` sample, half a second),
    /// its rates count towards the peaks and it restarts from this sample.
    package mutating func sample(now: Double, final: Bool = false) {
        let first = windowStart
        let span = now - first.0
        guard span >= Self.peakWindow || (final && span >= 0.5) else { return }
        peakRowsPerSecond = max(peakRowsPerSecond, Double(sentRows - first.1) / span)
        peakBytesPerSecond = max(peakBytesPerSecond, Double(sentBytes - first.2) / span)
        windowStart = (now, sentRows, sentBytes)
    }

    /// The figures at `now`; the rate limiters have waited `throttledSeconds` in all so far.
    package mutating func snapshot(now: Double, throttledSeconds: Double) -> ProgressSnapshot {
        if throttledSeconds > lastThrottled {
            lastThrottled = throttledSeconds
            throttledUntil = now + 1
        }
        let activity: ProgressSnapshot.Activity
        if let lastRetry, lastRetry >= lastAdvance {
            activity = .retrying
        } else if now <= throttledUntil {
            activity = .throttled
        } else {
            activity = .running
        }
        var snapshot = ProgressSnapshot(
            total: total, rows: rows, bytes: bytes, seconds: max(0, now - started), retries: retries,
            throttledSeconds: throttledSeconds, activity: activity)
        if let phase {
            snapshot.seconds = phase.rowSeconds
            snapshot.phase = ProgressSnapshot.Phase(name: phase.name, seconds: max(0, now - phase.since))
        }
        return snapshot
    }
}

/// What a progress line shows.
package struct ProgressSnapshot: Equatable, Sendable {
    package enum Activity: String, Sendable {
        case running, throttled, retrying
    }

    package var total: StageProgress.Total
    package var rows: Int
    package var bytes: Int
    package var seconds: Double
    package var retries: Int
    package var throttledSeconds: Double
    package var activity: Activity
    /// The phase after the rows (``StageProgress/enterPhase(_:)``) and its seconds so far; ``seconds`` is then the
    /// time the rows took.
    package var phase: Phase?

    package struct Phase: Equatable, Sendable {
        package var name: String
        package var seconds: Double
    }

    package init(
        total: StageProgress.Total, rows: Int, bytes: Int, seconds: Double, retries: Int = 0,
        throttledSeconds: Double = 0, activity: Activity = .running
    ) {
        self.total = total
        self.rows = rows
        self.bytes = bytes
        self.seconds = seconds
        self.retries = retries
        self.throttledSeconds = throttledSeconds
        self.activity = activity
    }

    /// Done share, 0…1, when the total is known.
    package var fraction: Double? {
        switch total {
        case .bytes(let n): return n > 0 ? min(1, Double(bytes) / Double(n)) : 1
        case .rows(let n): return n > 0 ? min(1, Double(rows) / Double(n)) : 1
        case .unknown: return nil
        }
    }

    package var rowsPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    package var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }

    /// Seconds left at the average rate so far; `nil` without a total, before any work, or in a phase.
    package var etaSeconds: Double? {
        guard phase == nil, let fraction, fraction > 0, seconds > 0 else { return nil }
        return seconds * (1 - fraction) / fraction
    }

    /// `load   42.0%  1,234,567 rows  301.2k rows/s  12.4 MB/s  ETA 1:23  throttled`, `refresh  working  0:07`, or
    /// in a phase `load  100.0%  123,103,793 rows  905.2k rows/s  71.7 MB/s  building indexes 0:42`.
    package func terminalLine(stage: String) -> String {
        var parts = [stage]
        if total == .unknown, rows == 0, bytes == 0 {  // one statement (refresh): how long it has taken
            parts += ["working", Self.clock(seconds)]
            if activity != .running { parts.append(activity.rawValue) }
            return parts.joined(separator: "  ")
        }
        if let fraction { parts.append(String(format: "%5.1f%%", fraction * 100)) }
        parts.append("\(Self.grouped(rows)) rows")
        parts.append("\(Self.compact(rowsPerSecond)) rows/s")
        if bytes > 0 { parts.append(String(format: "%.1f MB/s", bytesPerSecond / 1e6)) }
        if let phase {
            parts.append("\(phase.name) \(Self.clock(phase.seconds))")
        } else {
            parts.append(etaSeconds.map { "ETA \(Self.clock($0))" } ?? Self.clock(seconds))
        }
        if activity != .running { parts.append(activity.rawValue) }
        return parts.joined(separator: "  ")
    }

    /// `load progress`, or with the state: `load progress: throttled by the rate limits`, or the phase:
    /// `load progress: building indexes`.
    package func logMessage(stage: String) -> String {
        switch activity {
        case .running: return "\(stage) progress" + (phase.map { ": \($0.name)" } ?? "")
        case .throttled: return "\(stage) progress: throttled by the rate limits"
        case .retrying: return "\(stage) progress: retrying after a transient database error"
        }
    }

    package var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = [
            "rows": "\(rows)", "rows.per.second": "\(Int(rowsPerSecond))",
            "mb.per.second": "\(String(format: "%.1f", bytesPerSecond / 1e6))",
            "seconds": "\(String(format: "%.1f", seconds))", "state": "\(activity.rawValue)",
        ]
        if let fraction { m["percent"] = "\(String(format: "%.1f", fraction * 100))" }
        if let etaSeconds { m["eta.seconds"] = "\(Int(etaSeconds.rounded()))" }
        if throttledSeconds > 0 { m["throttled.seconds"] = "\(String(format: "%.1f", throttledSeconds))" }
        if retries > 0 { m["retries"] = "\(retries)" }
        if let phase {
            m["phase"] = "\(phase.name)"
            m["phase.seconds"] = "\(String(format: "%.1f", phase.seconds))"
        }
        return m
    }

    /// `1,234,567`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// `950`, `12.3k`, `4.56M`.
    static func compact(_ x: Double) -> String {
        switch x {
        case ..<1_000: return String(format: "%.0f", x)
        case ..<1_000_000: return String(format: "%.1fk", x / 1e3)
        default: return String(format: "%.2fM", x / 1e6)
        }
    }

    /// `0:07`, `12:34`, `1:02:03`.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
