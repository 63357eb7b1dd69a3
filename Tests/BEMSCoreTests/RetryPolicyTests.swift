import Foundation
import Logging
import Testing

@testable import BEMSCore

/// A clock that only advances when the policy sleeps (or a test body says so), so nothing waits.
final class FakeClock: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var _now = 0.0
    private var _sleeps: [Double] = []

    var now: Double { lock.withLock { _now } }
    var sleeps: [Double] { lock.withLock { _sleeps } }

    func advance(_ seconds: Double) { lock.withLock { _now += seconds } }

    var clock: RetryPolicy.Clock {
        RetryPolicy.Clock(
            now: { self.now },
            sleep: { seconds in
                self.lock.withLock {
                    self._sleeps.append(seconds)
                    self._now += seconds
                }
            })
    }
}

@Suite struct RetryPolicyTests {
    static let transient = PostgresError(code: .connectionLost, message: "server closed the connection unexpectedly")
    static let logger = Logger(label: "test.retry")

    func policy(_ clock: FakeClock, attempts: Int = 4, budget: Double = 30, jitter: RetryPolicy.Jitter = .none)
        -> RetryPolicy
    {
        RetryPolicy(baseDelay: 1, maxAttempts: attempts, budget: budget, jitter: jitter, clock: clock.clock)
    }

    @Test func defaultsAreOneTryAndThreeRetriesOf1_2_4Seconds() {
        let p = RetryPolicy()
        #expect(p.maxAttempts == 4)
        #expect(p.baseDelay == 1)
        #expect((1...3).map { p.nominalDelay(after: $0) } == [1, 2, 4])
    }

    @Test func transientFailuresAreRetriedWith1_2_4SecondDelays() throws {
        let clock = FakeClock()
        var calls = 0
        let error = #expect(throws: PostgresError.self) {
            try policy(clock).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw Self.transient
            }
        }
        #expect(error?.code == .connectionLost)
        #expect(calls == 4)
        #expect(clock.sleeps == [1, 2, 4])
    }

    @Test func successAfterTransientFailuresReturnsTheResult() throws {
        let clock = FakeClock()
        var calls = 0
        let value = try policy(clock).run("x", logger: Self.logger) { () throws -> String in
            calls += 1
            if calls < 3 { throw PostgresError(code: .queryFailed, sqlState: "40P01", message: "deadlock detected") }
            return "ok"
        }
        #expect(value == "ok")
        #expect(calls == 3)
        #expect(clock.sleeps == [1, 2])
    }

    @Test func asyncWorkIsRetriedTheSameWay() async throws {
        let clock = FakeClock()
        var calls = 0
        let value = try await policy(clock).run("x", logger: Self.logger) { () async throws -> Int in
            calls += 1
            await Task.yield()
            if calls < 3 { throw Self.transient }
            return calls
        }
        #expect(value == 3)
        #expect(clock.sleeps == [1, 2])

        var permanentCalls = 0
        await #expect(throws: PipelineError.self) {
            try await policy(clock).run("x", logger: Self.logger) { () async throws -> Int in
                permanentCalls += 1
                throw PipelineError.io("disk full")
            }
        }
        #expect(permanentCalls == 1)

        var transientCalls = 0
        await #expect(throws: PostgresError.self) {
            try await policy(clock, attempts: 3).run("x", logger: Self.logger) { () async throws -> Int in
                transientCalls += 1
                throw Self.transient
            }
        }
        #expect(transientCalls == 3)
    }

    @Test(arguments: ["23505", "42601", "22003", "28P01", "42P01"])
    func permanentSQLErrorsAreNotRetried(_ sqlState: String) {
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PostgresError.self) {
            try policy(clock).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw PostgresError(code: .queryFailed, sqlState: sqlState, message: "no")
            }
        }
        #expect(calls == 1)
        #expect(clock.sleeps.isEmpty)
    }

    @Test func nonDatabaseErrorsAreNotRetried() {
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PipelineError.self) {
            try policy(clock).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw PipelineError.data("the database changed since bems-dedupe ran")
            }
        }
        #expect(calls == 1)
    }

    @Test(arguments: ["57P01", "57P02", "57P03", "53300", "40001", "40P01", "57014", "08006"])
    func transientSQLStatesAreRetried(_ sqlState: String) {
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PostgresError.self) {
            try policy(clock, attempts: 2).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw PostgresError(code: .queryFailed, sqlState: sqlState, message: "transient")
            }
        }
        #expect(calls == 2)
    }

    @Test func theBudgetStopsRetriesEarly() {
        // Budget 5 s: after waits of 1 and 2 s (t = 3), the next wait of 4 s would end at 7 s > 5 s.
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PostgresError.self) {
            try policy(clock, attempts: 10, budget: 5).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw Self.transient
            }
        }
        #expect(calls == 3)
        #expect(clock.sleeps == [1, 2])
        #expect(clock.now <= 5)
    }

    @Test func timeSpentInTheBodyCountsAgainstTheBudget() {
        // Each attempt takes 4 s (a connect timeout): 4 + 1 = 5 fits in 6 s, then 5 + 4 + 2 = 11 does not.
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PostgresError.self) {
            try policy(clock, attempts: 10, budget: 6).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                clock.advance(4)
                throw Self.transient
            }
        }
        #expect(calls == 2)
        #expect(clock.sleeps == [1])
    }

    @Test func oneAttemptMeansNoRetry() {
        let clock = FakeClock()
        var calls = 0
        #expect(throws: PostgresError.self) {
            try policy(clock, attempts: 1).run("x", logger: Self.logger) { () throws -> Int in
                calls += 1
                throw Self.transient
            }
        }
        #expect(calls == 1)
    }

    @Test func proportionalJitterStaysWithin20Percent() {
        let p = RetryPolicy(baseDelay: 1, maxAttempts: 4, budget: 30, jitter: .proportional)
        for attempt in 1...3 {
            let nominal = p.nominalDelay(after: attempt)
            let delays = (0..<200).map { _ in p.delay(after: attempt) }
            #expect(delays.allSatisfy { $0 >= nominal * 0.8 && $0 <= nominal * 1.2 })
            #expect(Set(delays).count > 1)
        }
    }

    @Test func fullJitterStaysBetweenZeroAndTheDelay() {
        let p = RetryPolicy(baseDelay: 1, maxAttempts: 4, budget: 30, jitter: .full)
        let delays = (0..<200).map { _ in p.delay(after: 3) }
        #expect(delays.allSatisfy { $0 >= 0 && $0 <= 4 })
        #expect(delays.contains { $0 < 2 } && delays.contains { $0 > 2 })
    }

    // MARK: - Configuration

    @Test func retryIsReadPerEnvironment() throws {
        let json = """
            {"environments": {"prod": {"retry": {"baseDelaySeconds": 0.5, "maxAttempts": 6, "budgetSeconds": 120,
             "jitter": "full"}}}}
            """
        let config = try PipelineConfig.parse(Data(json.utf8))
        let prod = try #require(config.environments["prod"]).retry
        #expect(prod == RetryPolicy(baseDelay: 0.5, maxAttempts: 6, budget: 120, jitter: .full))
        #expect(config.environments["dev"]?.retry == RetryPolicy())
    }

    @Test func aPartialRetryObjectKeepsTheOtherDefaults() throws {
        let json = #"{"environments": {"dev": {"retry": {"maxAttempts": 2}}}}"#
        let retry = try #require(try PipelineConfig.parse(Data(json.utf8)).environments["dev"]).retry
        #expect(retry.maxAttempts == 2)
        #expect(retry.baseDelay == 1 && retry.budget == 30 && retry.jitter == .proportional)
    }

    @Test(arguments: [
        (#"{"maxAttempts": 0}"#, "environments.dev.retry.maxAttempts"),
        (#"{"maxAttempts": 2.5}"#, "environments.dev.retry.maxAttempts"),
        (#"{"maxAttempts": "3"}"#, "environments.dev.retry.maxAttempts"),
        (#"{"baseDelaySeconds": -1}"#, "environments.dev.retry.baseDelaySeconds"),
        (#"{"baseDelaySeconds": true}"#, "environments.dev.retry.baseDelaySeconds"),
        (#"{"budgetSeconds": "30"}"#, "environments.dev.retry.budgetSeconds"),
        (#"{"jitter": "some"}"#, "environments.dev.retry.jitter"),
        (#"{"jitter": 1}"#, "environments.dev.retry.jitter"),
        (#"{"baseDelay": 1}"#, "environments.dev.retry.baseDelay"),
        (#"[1]"#, "environments.dev.retry"),
    ])
    func configErrorsNameTheKey(_ retry: String, _ key: String) {
        let json = #"{"environments": {"dev": {"retry": "# + retry + "}}}"
        let error = #expect(throws: PipelineError.self) { try PipelineConfig.parse(Data(json.utf8)) }
        #expect(error?.message.contains(key + ":") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(error?.exitStatus == .usage)
    }
}
