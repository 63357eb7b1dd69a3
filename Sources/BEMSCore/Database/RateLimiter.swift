import Foundation
import Synchronization

/// A token bucket shared by the load workers: `rate` tokens per second (rows, bytes or connection attempts), with a
/// burst of `burst` tokens. ``acquire(_:)`` takes tokens and blocks the calling thread until they are there, so the
/// long-run rate never exceeds `rate` whatever the number of workers. Waiting is counted, so progress and the run
/// report can say the load was throttled.
///
/// Tokens can be taken ahead of time (the balance goes negative and later callers wait): a worker asks for a whole
/// COPY buffer at once without starving, and the average still holds.
package final class RateLimiter: Sendable {
    package let rate: Double
    package let burst: Double
    private let clock: RetryPolicy.Clock
    private struct State {
        var bucket: TokenBucket
        var throttledSeconds: Double = 0
        var waits = 0
    }
    private let state: Mutex<State>

    /// - Parameters:
    ///   - rate: Tokens per second, more than 0.
    ///   - burst: Tokens available at once (default: one second's worth).
    package init(rate: Double, burst: Double? = nil, clock: RetryPolicy.Clock = .system) {
        precondition(rate > 0, "a rate limit is positive")
        self.rate = rate
        self.burst = burst ?? rate
        self.clock = clock
        state = Mutex(State(bucket: TokenBucket(rate: rate, burst: burst ?? rate, now: clock.now())))
    }

    /// Takes `count` tokens, waiting as long as the bucket needs to pay them back.
    ///
    /// - Returns: The seconds this call waited (0 when not throttled).
    @discardableResult
    package func acquire(_ count: Double) -> Double {
        let wait = state.withLock { s -> Double in
            s.bucket.refill(now: clock.now())
            s.bucket.tokens -= count
            guard s.bucket.tokens < 0 else { return 0 }
            let wait = -s.bucket.tokens / rate
            s.throttledSeconds += wait
            s.waits += 1
            return wait
        }
        if wait > 0 { clock.sleep(wait) }
        return wait
    }

    /// Seconds spent waiting so far, by every caller together, and how many calls waited.
    package var throttled: (seconds: Double, waits: Int) { state.withLock { ($0.throttledSeconds, $0.waits) } }
}

/// A token bucket's arithmetic: `rate` tokens per second up to `burst`, refilled from the time of the last refill.
/// ``RateLimiter`` (blocking, shared by the load workers) and the admin API's per-client limit (refusing) keep one.
package struct TokenBucket: Sendable {
    package let rate: Double
    package let burst: Double
    /// Tokens now; negative when taken ahead (the takers wait it off).
    package var tokens: Double
    /// When ``tokens`` was last refilled.
    package var last: Double

    /// A full bucket at `now`.
    package init(rate: Double, burst: Double, now: Double) {
        self.rate = rate
        self.burst = burst
        tokens = burst
        last = now
    }

    /// Adds what `now - last` seconds earned, up to `burst`.
    package mutating func refill(now: Double) {
        tokens = min(burst, tokens + max(0, now - last) * rate)
        last = now
    }

    /// Whether the bucket is full at `now` (it holds nothing a new bucket would not).
    package func isFull(at now: Double) -> Bool { tokens + max(0, now - last) * rate >= burst }
}

/// The limits of one load: rows/s and bytes/s for COPY, attempts/s for connections (`environments.<env>.rateLimit`).
/// `nil` limits nothing.
package struct LoadRateLimits: Sendable {
    package var rows: RateLimiter?
    package var bytes: RateLimiter?
    package var connections: RateLimiter?

    package init(rows: RateLimiter? = nil, bytes: RateLimiter? = nil, connections: RateLimiter? = nil) {
        self.rows = rows
        self.bytes = bytes
        self.connections = connections
    }

    /// Seconds any limiter made a caller wait.
    package var throttledSeconds: Double {
        [rows, bytes, connections].compactMap { $0?.throttled.seconds }.reduce(0, +)
    }
}
