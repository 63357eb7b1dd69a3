import Foundation
import Testing

@testable import BEMSCore

@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct LoadRollbackTests {
    @Test func rollbackRestoresTheEarlierContentExactly() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 600))
            let first = try await f.load()
            let afterFirst = try f.checksum()
            var second = LoadFixture.readings(start: 1_546_304_400 + 300 * 60, minutes: 600)
            for i in second.indices where i % 3 == 0 { second[i].value += 7 }
            try f.publishDedupe(second)
            let load2 = try await f.load()
            #expect(load2.inserted > 0 && load2.updated > 0)
            #expect(try f.checksum() != afterFirst)

            // The first run cannot go before the second (which updated rows it inserted).
            let refused = #expect(throws: PipelineError.self) { try f.rollback(String(first.ledgerRunID!)) }
            #expect(refused?.exitStatus == .dataError)

            let r = try f.rollback()
            #expect(r.ledgerRunID == load2.ledgerRunID)
            #expect(r.deleted == load2.inserted)
            #expect(r.restored == load2.updated)
            #expect(try f.checksum() == afterFirst)
            // The work directory points at the first load again, which still verifies.
            #expect(f.work.currentRunID(.load) == first.manifest?.runID)
            #expect(try f.verify().passed)

            // Now the first run can go too: back to an empty table.
            _ = try f.rollback()
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == 0)
            #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == 0)
            #expect(try f.count("SELECT count(*) FROM runs WHERE stage = 'load' AND status = 'rolled_back'") == 2)
            // Stats are back to zero for every sensor-day.
            #expect(
                try f.count("SELECT count(*) FROM sensor_day_stats WHERE reading_count <> 0 OR value_sum <> 0") == 0)
            #expect(throws: PipelineError.self) { try f.rollback() }
        }
    }

    @Test func reloadAfterRollbackConvergesAndVerifies() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 300))
            _ = try await f.load()
            _ = try f.rollback()
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == 0)
            let again = try await f.load()
            #expect(again.inserted == 6 * 300)
            #expect(again.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
        }
    }
}
