import Foundation
import Logging

/// When and how often to retry database work that failed with a transient error.
///
/// Attempt `n` (1-based) that fails transiently is followed by a wait of `baseDelay × 2^(n-1)` seconds, with jitter:
/// 1 s, 2 s, 4 s by default, so `maxAttempts` 4 is one try plus three retries. A retry is only started when the time
/// since the first attempt plus the next wait stays within `budget`. Permanent errors (see
/// ``PostgresError/isTransient``) are thrown at once.
///
/// Read from pipeline.json per environment (`environments.<env>.retry`); README.md documents the keys.
package struct RetryPolicy: Sendable {
    /// How the computed delay is randomized, so parallel workers that failed together don't retry together.
    package enum Jitter: String, Sendable, CaseIterable {
        /// Exactly the exponential delay (tests, reproducible timings).
        case none
        /// A uniformly random delay between 0 and the exponential delay ("full jitter").
        case full
        /// The exponential delay ±20 %.
        case proportional
    }

    /// The time source and the sleep, injectable so unit tests don't wait.
    package struct Clock: Sendable {
        /// Seconds on a monotonic scale.
        package var now: @Sendable () -> Double
        /// Waits the given number of seconds.
        package var sleep: @Sendable (Double) -> Void

        /// Creates a clock from its two functions.
        package init(now: @escaping @Sendable () -> Double, sleep: @escaping @Sendable (Double) -> Void) {
            self.now = now
            self.sleep = sleep
        }

        /// The process's monotonic clock and `Thread.sleep`.
        package static let system = Clock(
            now: { ProcessInfo.processInfo.systemUptime }, sleep: { Thread.sleep(forTimeInterval: $0) })
    }

    /// The wait after the first failed attempt, in seconds; it doubles after each further failure.
    package var baseDelay: Double = 1
    /// Attempts in total, the first one included (1 disables retries).
    package var maxAttempts: Int = 4
    /// Seconds from the first attempt after which no further retry is started.
    package var budget: Double = 30
    /// The randomization of each delay.
    package var jitter: Jitter = .proportional
    /// Where time comes from.
    package var clock: Clock = .system

    /// The default policy: 1 s, 2 s, 4 s (±20 %), within 30 s.
    package init() {}

    /// A policy with the given settings.
    package init(
        baseDelay: Double, maxAttempts: Int, budget: Double, jitter: Jitter = .proportional, clock: Clock = .system
    ) {
        self.baseDelay = baseDelay
        self.maxAttempts = maxAttempts
        self.budget = budget
        self.jitter = jitter
        self.clock = clock
    }

    /// A policy that never retries.
    package static let never = RetryPolicy(baseDelay: 0, maxAttempts: 1, budget: 0)

    // MARK: - Delays

    /// The delay before attempt `attempt + 1`, without jitter: `baseDelay × 2^(attempt-1)`.
    ///
    /// - Parameter attempt: the attempt that just failed, 1-based.
    package func nominalDelay(after attempt: Int) -> Double {
        baseDelay * Double(1 << min(max(attempt - 1, 0), 30))
    }

    /// The delay before attempt `attempt + 1`, with ``jitter`` applied.
    package func delay(after attempt: Int) -> Double {
        let nominal = nominalDelay(after: attempt)
        switch jitter {
        case .none: return nominal
        case .full: return Double.random(in: 0...nominal)
        case .proportional: return nominal * Double.random(in: 0.8...1.2)
        }
    }

    /// Whether retrying might help: a ``PostgresError`` that is ``PostgresError/isTransient``.
    ///
    /// Everything else is permanent: ``PipelineError`` (data changed since dedupe, checksum, usage), chunk errors and
    /// SQL errors such as syntax or constraint violations.
    package static func isTransient(_ error: any Error) -> Bool {
        (error as? PostgresError)?.isTransient ?? false
    }

    // MARK: - Running

    /// Runs `body`, retrying it after transient failures as the policy allows.
    ///
    /// Each retry is logged at `warning` with the attempt number and the reason (SQLSTATE and message; the
    /// connection string is never part of a ``PostgresError``).
    ///
    /// - Parameters:
    ///   - what: a short name of the work for the log (`connect`, `chunk f1-2019-01-01`).
    ///   - logger: where retries are logged (`nil`: nowhere).
    ///   - body: the work; it must be safe to run again after a transient failure.
    /// - Returns: the first successful result.
    /// - Throws: the first permanent error at once, or the last transient error when the attempts or the budget are
    ///   used up.
    package func run<T>(_ what: String, logger: Logger?, _ body: () throws -> T) throws -> T {
        let start = clock.now()
        var attempt = 1
        while true {
            do {
                return try body()
            } catch {
                clock.sleep(try waitBeforeRetry(after: error, attempt: attempt, since: start, what, logger: logger))
                attempt += 1
            }
        }
    }

    /// Runs asynchronous work, retrying it after transient failures as the policy allows; see
    /// ``run(_:logger:_:)-(_,_,()throws->T)``. The wait blocks the calling thread (``Clock/sleep``), like every
    /// other database call of the pipeline.
    package func run<T>(_ what: String, logger: Logger?, _ body: () async throws -> T) async throws -> T {
        let start = clock.now()
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch {
                clock.sleep(try waitBeforeRetry(after: error, attempt: attempt, since: start, what, logger: logger))
                attempt += 1
            }
        }
    }

    /// Decides after a failed attempt: returns the wait before the next one (logged as a retry), or rethrows the
    /// error when it is permanent or the attempts or the budget are used up (logged as giving up).
    private func waitBeforeRetry(
        after error: any Error, attempt: Int, since start: Double, _ what: String, logger: Logger?
    ) throws -> Double {
        guard Self.isTransient(error) else { throw error }
        let wait = delay(after: attempt)
        let elapsed = clock.now() - start
        var metadata: Logger.Metadata = [
            "retry.what": "\(what)", "retry.attempt": "\(attempt)", "retry.max": "\(maxAttempts)",
            "error": "\(Self.reason(error))",
        ]
        if let pg = error as? PostgresError, let state = pg.sqlState { metadata["pg.sqlstate"] = "\(state)" }
        guard attempt < maxAttempts, elapsed + wait <= budget else {
            metadata["seconds.elapsed"] = "\(String(format: "%.1f", elapsed))"
            logger?.warning("transient database error, giving up", metadata: metadata)
            throw error
        }
        metadata["retry.delay"] = "\(String(format: "%.2f", wait))"
        logger?.warning("transient database error, retrying", metadata: metadata)
        return wait
    }

    /// The loggable reason: the ``PostgresError`` description (code, SQLSTATE, message) or the error's text.
    static func reason(_ error: any Error) -> String {
        if let pg = error as? PostgresError { return pg.description }
        return "\(error)"
    }
}

// MARK: - Equatable

extension RetryPolicy: Equatable {
    /// Equal settings; the clock is not compared.
    package static func == (a: RetryPolicy, b: RetryPolicy) -> Bool {
        a.baseDelay == b.baseDelay && a.maxAttempts == b.maxAttempts && a.budget == b.budget && a.jitter == b.jitter
    }
}
