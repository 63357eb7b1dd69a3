import Foundation
import Synchronization
import Testing

import BEMSCore
@testable import BEMSServer

@Suite struct ClientRateLimitTests {
    /// A clock the test moves by hand.
    final class Clock: Sendable {
        let now = Mutex(1_000.0)
        func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
        var read: @Sendable () -> Double { { self.now.withLock { $0 } } }
    }

    @Test func aClientGetsItsBurstThenTheRateAndIsToldWhenToComeBack() {
        let clock = Clock()
        let limit = ClientRateLimit(rate: 0.5, burst: 3, clock: clock.read)
        #expect((0..<3).map { _ in limit.admit("10.0.0.1") } == [nil, nil, nil])
        #expect(limit.admit("10.0.0.1") == 2)  // one request every 2 s
        // Another address has a bucket of its own.
        #expect(limit.admit("10.0.0.2") == nil)
        clock.advance(1.5)
        #expect(limit.admit("10.0.0.1") == 0.5)  // refused calls take nothing
        clock.advance(0.5)
        #expect(limit.admit("10.0.0.1") == nil)
        #expect(limit.admit("10.0.0.1") == 2)
        // A long pause refills to the burst, never beyond it.
        clock.advance(3_600)
        #expect((0..<4).map { _ in limit.admit("10.0.0.1") } == [nil, nil, nil, 2])
    }

    @Test func fullBucketsAreDroppedWhenTooManyAddressesAreTracked() {
        let clock = Clock()
        let limit = ClientRateLimit(rate: 1, burst: 2, maxClients: 3, clock: clock.read)
        for i in 0..<3 { #expect(limit.admit("10.0.0.\(i)") == nil) }
        #expect(limit.clients == 3)
        clock.advance(5)  // every bucket is full again
        #expect(limit.admit("10.0.1.1") == nil)
        // Over the cap: the full buckets go, the new address's (not full) stays.
        #expect(limit.clients == 1)
        // A busy address is kept while over the cap.
        #expect(limit.admit("10.0.1.2") == nil)
        #expect(limit.admit("10.0.1.3") == nil)
        #expect(limit.admit("10.0.1.4") == nil)
        #expect(limit.clients == 4)
        #expect(PipelineConfig.written(10) == "10" && PipelineConfig.written(0.5) == "0.5")
    }
}
