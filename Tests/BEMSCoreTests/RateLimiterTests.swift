import Foundation
import Synchronization
import Testing

@testable import BEMSCore

@Suite struct RateLimiterTests {
    /// A clock that only moves when someone sleeps.
    final class FakeClock: Sendable {
        let time = Mutex(0.0)
        var clock: RetryPolicy.Clock {
            RetryPolicy.Clock(now: { self.time.withLock { $0 } }, sleep: { s in self.time.withLock { $0 += s } })
        }
    }

    @Test func theLongRunRateHoldsAndWaitsAreCounted() {
        let fake = FakeClock()
        let limiter = RateLimiter(rate: 50_000, clock: fake.clock)
        // 2 s worth of rows in 1000-row batches, plus the 1 s burst: 150 000 rows take 2 s.
        for _ in 0..<150 { limiter.acquire(1000) }
        let elapsed = fake.time.withLock { $0 }
        #expect(abs(elapsed - 2.0) < 1e-9)
        #expect(abs(limiter.throttled.seconds - 2.0) < 1e-9)
        #expect(limiter.throttled.waits == 100)
    }

    @Test func idleTimeRefillsOnlyUpToTheBurst() {
        let fake = FakeClock()
        let limiter = RateLimiter(rate: 100, burst: 10, clock: fake.clock)
        #expect(limiter.acquire(10) == 0)
        fake.time.withLock { $0 += 60 }  // a minute idle: still only 10 tokens
        #expect(limiter.acquire(10) == 0)
        #expect(abs(limiter.acquire(5) - 0.05) < 1e-9)
        // A request bigger than the burst is paid back over time instead of blocking forever.
        #expect(abs(limiter.acquire(100) - 1.0) < 1e-9)
    }

    @Test func limitsOfALoad() {
        let fake = FakeClock()
        let limits = LoadRateLimits(rows: RateLimiter(rate: 10, clock: fake.clock), bytes: nil, connections: nil)
        limits.rows?.acquire(30)
        #expect(abs(limits.throttledSeconds - 2) < 1e-9)
        #expect(LoadRateLimits().throttledSeconds == 0)
    }

    @Test func connectionRoomCountsEveryoneAndTheCap() {
        let budget = ConnectionBudget(cap: 100, share: 0.8)
        #expect(budget.room(serverMax: 100, inUse: 10) == 70)
        #expect(budget.room(serverMax: 100, inUse: 80) == 0)
        #expect(budget.room(serverMax: 100, inUse: 95) == 0)
        #expect(budget.room(serverMax: 1000, inUse: 10) == 100)
        #expect(ConnectionBudget(cap: 3).room(serverMax: 20, inUse: 2) == 3)
        #expect(budget.room(serverMax: 20, inUse: 15) == 1)
    }
}
