import BEMSCore
import Foundation
import Synchronization

/// The admin API's request limit: a token bucket per client address (`serve.requestsPerSecond`, `serve.requestBurst`).
/// Each address has a ``BEMSCore/TokenBucket``; unlike the load's ``BEMSCore/RateLimiter`` it never waits: a request over the limit is refused at once (429) and
/// told when the next one will be admitted.
///
/// The buckets are kept in memory; a bucket that has refilled completely holds nothing worth keeping, so when more
/// than ``maxClients`` addresses are tracked the full ones are dropped (a flood of addresses cannot grow it for long).
package final class ClientRateLimit: Sendable {
    package let rate: Double
    package let burst: Double
    /// Tracked addresses above which full buckets are dropped.
    package let maxClients: Int
    private let clock: @Sendable () -> Double
    private let buckets = Mutex<[String: TokenBucket]>([:])

    /// - Parameters:
    ///   - rate: Requests per second over time, above 0.
    ///   - burst: Requests at once, at least 1.
    ///   - clock: Monotonic seconds (tests pass their own).
    package init(
        rate: Double, burst: Int, maxClients: Int = 10_000,
        clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    ) {
        precondition(rate > 0 && burst >= 1, "a request limit is positive")
        self.rate = rate
        self.burst = Double(burst)
        self.maxClients = maxClients
        self.clock = clock
    }

    /// Takes one request from `client`'s bucket.
    ///
    /// - Returns: `nil` when the request is admitted, else the seconds until one will be.
    package func admit(_ client: String) -> Double? {
        let now = clock()
        return buckets.withLock { buckets -> Double? in
            var bucket = buckets[client] ?? TokenBucket(rate: rate, burst: burst, now: now)
            bucket.refill(now: now)
            defer {
                buckets[client] = bucket
                if buckets.count > maxClients { buckets = buckets.filter { !$0.value.isFull(at: now) } }
            }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
    }

    /// Addresses tracked now.
    package var clients: Int { buckets.withLock { $0.count } }
}
