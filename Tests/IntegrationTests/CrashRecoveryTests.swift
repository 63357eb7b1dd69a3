import Foundation
import Testing

@testable import BEMSCore

/// States a crash (or a full disk) can leave between two steps of a stage, made directly, and what the next run does
/// with them. ``StageKillTests`` reaches them with real kills; these pin each one down.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(3)))
struct CrashRecoveryTests {
    @Test func loadPublishedButNotVerifiedIsVerifiedByTheUpToDateRerun() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 200))
            let first = try await f.load()
            let run = try #require(first.manifest?.runID)
            let verifyFile = f.work.runDirectory(.load, run) + "/verify.json"
            // As if killed (or out of disk) after the manifest, before verify.json.
            try FileManager.default.removeItem(atPath: verifyFile)
            let again = try await f.load()
            #expect(again.upToDate)
            #expect(again.verify?.passed == true)
            #expect(again.exitStatus == .ok)
            #expect(FileManager.default.fileExists(atPath: verifyFile))
            // Once verified, an up-to-date rerun does not verify again.
            #expect(try await f.load().verify == nil)
        }
    }

    @Test func loadRefusedBecauseTheDatabaseChangedMarksTheDedupeRunStale() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 100))
            _ = try await f.load()
            var second = LoadFixture.readings(minutes: 100)
            for i in second.indices { second[i].value += 3 }
            let dedupe = try f.publishDedupe(second)
            try f.db.exec(
                "UPDATE sensor_readings SET reading_value = reading_value + 1 WHERE id = (SELECT min(id) FROM sensor_readings)"
            )
            let error = await #expect(throws: PipelineError.self) { try await f.load() }
            #expect(error?.exitStatus == .dataError)
            #expect(f.work.staleReason(.dedupe, dedupe.runID)?.contains("rerun bems-dedupe") == true)
        }
    }
}
