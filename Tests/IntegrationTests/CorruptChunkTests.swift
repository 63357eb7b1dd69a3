import Foundation
import Testing

@testable import BEMSCore

/// Damaged chunk files on disk: truncated, one byte flipped, two swapped (same floor-day size class). Each is refused
/// before any of it is used, the error names the chunk and marks the run that holds it stale, and a plain rerun of
/// the pipeline (as `make load` does) writes that run again and gives the exact content. The stages run as the built executables, one test at a time with the other fault tests.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct CorruptChunkTests {
    enum Damage: String, CaseIterable, Sendable {
        case truncate, flip, swap
    }

    /// Damages `files` (two for a swap, else the first).
    static func damage(_ damage: Damage, _ files: [String]) throws {
        let originals = try files.map { ($0, try ChunkFile.read($0)) }
        switch damage {
        case .truncate:
            try AtomicFile.write(originals[0].1.prefix(originals[0].1.count / 2), to: files[0])
        case .flip:
            var bytes = originals[0].1
            bytes[bytes.count / 2] ^= 0x10
            try AtomicFile.write(bytes, to: files[0])
        case .swap:
            try AtomicFile.write(originals[1].1, to: files[0])
            try AtomicFile.write(originals[0].1, to: files[1])
        }
    }

    /// `bems inspect` on a damaged chunk: truncated and flipped ones exit 74 naming the file; a swapped one is a
    /// valid chunk of another floor-day (its header says which), caught only by the manifest's SHA-256.
    static func expectInspect(_ h: PipelineHarness, _ damage: Damage, _ file: String, expectedFloor: Int) throws {
        let inspect = try h.run(
            [PipelineHarness.binDirectory + "/bems", "inspect", "--header-only", file], label: "inspect")
        switch damage {
        case .truncate, .flip:
            #expect(inspect.status == 74, "\(damage): \(inspect.stderr)")
            #expect(inspect.stderr.contains(file), "\(damage): \(inspect.stderr)")
        case .swap:
            #expect(inspect.status == 0, "\(inspect.stderr)")
            let header = try ChunkReader.readHeader(ChunkFile.read(file))
            #expect(header.metadata["floor"] != String(expectedFloor))
        }
    }

    @Test(arguments: Damage.allCases)
    func damagedDedupeChunkIsRefusedBeforeAnyOfItIsLoaded(damage: Damage) async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run {
            let reference = try ReferenceContent.of(days: 2)
            let h = try PipelineHarness(days: 1)
            defer { h.remove() }
            // Day 1 loaded; then a second day arrives: dedupe writes one chunk per floor for it.
            for run in try h.runPipeline() { try #require(run.status == 0, "\(run.stage): \(run.stderr)") }
            try h.generateInput(days: 2)
            for run in try h.runPipeline([.validate, .normalize, .dedupe]) {
                try #require(run.status == 0, "\(run.stage): \(run.stderr)")
            }
            let work = WorkDir(root: h.work)
            let dedupe = try #require(try work.currentManifest(.dedupe))
            let newDay = dedupe.chunks.filter { $0.day == "2019-03-05" }
            try #require(newDay.count == 2, "one chunk per floor for the new day: \(dedupe.chunks.map(\.file))")
            let files = newDay.map { work.runDirectory(.dedupe, dedupe.runID) + "/" + $0.file }

            let before = try h.content()
            let ledgerRows = try h.db.exec("SELECT count(*) FROM loaded_chunks").scalarInt64()
            let runs = try h.db.exec("SELECT count(*) FROM runs").scalarInt64()
            let loadRuns = work.runIDs(.load)
            let loadCurrent = work.currentRunID(.load)

            try Self.damage(damage, files)
            let load = try h.run(.load)
            #expect(load.status == 74, "\(damage): \(load.stderr)")
            #expect(load.stderr.contains(newDay[0].file), "\(damage): \(load.stderr)")
            #expect(load.stderr.contains("nothing was loaded: rerun bems-dedupe"), "\(load.stderr)")
            #expect(work.staleReason(.dedupe, dedupe.runID)?.contains(newDay[0].file) == true)
            // Nothing of it reached the table or the ledger, and the work dir has no new load run.
            #expect(try h.content() == before)
            #expect(try h.db.exec("SELECT count(*) FROM loaded_chunks").scalarInt64() == ledgerRows)
            #expect(try h.db.exec("SELECT count(*) FROM runs").scalarInt64() == runs)
            #expect(work.runIDs(.load) == loadRuns && work.currentRunID(.load) == loadCurrent)
            try Self.expectInspect(h, damage, files[0], expectedFloor: newDay[0].floor)
            // The database still matches its ledger.
            let verify = try h.run(
                [PipelineHarness.binDirectory + "/bems", "verify"] + Array(h.arguments(.load).dropFirst()),
                label: "verify")
            #expect(verify.status == 0, "\(verify.stderr)")

            // As the message says: rerun dedupe (plain: the refused run is stale), then load.
            for run in try h.runPipeline([.dedupe, .load, .refresh]) {
                #expect(run.status == 0, "\(run.stage): \(run.stderr)")
            }
            #expect(work.currentRunID(.dedupe) != dedupe.runID)
            #expect(try h.content() == reference)
            #expect(try h.ledgerProblems().isEmpty)
            #expect(PipelineHarness.audit(h.work, complete: true).problems.isEmpty)
        }
    }

    @Test(arguments: Damage.allCases)
    func damagedNormalizeChunkIsRefusedByDedupe(damage: Damage) async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run {
            let reference = try ReferenceContent.of(days: 1)
            let h = try PipelineHarness(days: 1)
            defer { h.remove() }
            for run in try h.runPipeline([.validate, .normalize]) {
                try #require(run.status == 0, "\(run.stage): \(run.stderr)")
            }
            let work = WorkDir(root: h.work)
            let normalize = try #require(try work.currentManifest(.normalize))
            try #require(normalize.chunks.count == 2)
            let files = normalize.chunks.map { work.runDirectory(.normalize, normalize.runID) + "/" + $0.file }

            try Self.damage(damage, files)
            let dedupe = try h.run(.dedupe)
            #expect(dedupe.status == 74, "\(damage): \(dedupe.stderr)")
            #expect(dedupe.stderr.contains("rerun bems-normalize"), "\(dedupe.stderr)")
            #expect(work.staleReason(.normalize, normalize.runID) != nil)
            let named = normalize.chunks.filter { dedupe.stderr.contains($0.file) }
            #expect(
                damage == .swap ? !named.isEmpty : named.map(\.file) == [normalize.chunks[0].file], "\(dedupe.stderr)")
            #expect(work.currentRunID(.dedupe) == nil && work.runIDs(.dedupe).isEmpty)
            try Self.expectInspect(h, damage, files[0], expectedFloor: normalize.chunks[0].floor)

            // As the message says: rerun normalize (plain: the refused run is stale), then the rest.
            for run in try h.runPipeline([.normalize, .dedupe, .load, .refresh]) {
                #expect(run.status == 0, "\(run.stage): \(run.stderr)")
            }
            #expect(try h.content() == reference)
            #expect(try h.ledgerProblems().isEmpty)
            #expect(PipelineHarness.audit(h.work, complete: true).problems.isEmpty)
        }
    }
}
