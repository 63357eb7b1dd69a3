import Foundation
import Logging
import Testing

@testable import BEMSCore

@Suite struct ValidateStageTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func run(_ config: PipelineConfig, force: Bool = false, inputs: [String] = []) async throws -> ValidateStage.Result
    {
        var options = ValidateStage.Options(config: config, env: "dev")
        options.force = force
        options.inputs = inputs
        return try await ValidateStage.run(options, logger: logger)
    }

    func deadLetters(_ result: ValidateStage.Result) throws -> [DeadLetter] {
        let text = try String(contentsOfFile: result.runDirectory + "/dead-letter.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(DeadLetter.self, from: Data($0.utf8)) }
    }

    @Test func cleanFilePassesWithExactCounts() async throws {
        let dir = TemporaryDirectory()
        // 3000 minutes: every 7th cell empty, minute 100 all empty, one spike.
        dir.write(
            "in/2019Floor1.csv",
            CSV.file(floor: 1, minutes: 3000) { r, c in
                if r == 100 { return "" }
                if r == 200 && c == 8 { return "4762.43" }
                return (r + c) % 7 == 0 ? "" : "\(c).\(r % 100)"
            })
        let result = try await run(.testing(dir))
        #expect(result.exitStatus == .ok)
        #expect(!result.upToDate)
        let f = try #require(result.report.files.first)
        var empty = 0
        for r in 0..<3000 { for c in 0..<11 where r == 100 || (r + c) % 7 == 0 { empty += 1 } }
        #expect(f.rows == 3000)
        #expect(f.emptyCells == empty)
        #expect(f.readings == 3000 * 11 - empty)
        #expect(f.allEmptyRows == 1)
        #expect(f.anomalies == 1)
        #expect(f.rejectedRecords == 0)
        #expect(f.firstTimestamp == "2019-03-04 00:00:00")
        #expect(
            f.lastTimestamp
                == TimestampParser.format(localSeconds: try TimestampParser.parse("2019-03-04 00:00:00") + 2999 * 60))
        #expect(f.missingMinutes == 0)
        #expect(f.duplicateTimestamps == 0)
        #expect(f.passed)
        #expect(
            f.sha256
                == Digest.sha256Hex(Array(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/in/2019Floor1.csv")))))
        #expect(try deadLetters(result).isEmpty)
        let manifest = try #require(try WorkDir(root: dir.path + "/work").currentManifest(.validate))
        #expect(manifest.runID == result.manifest.runID)
        #expect(manifest.inputs.first?.sha256 == f.sha256)
    }

    @Test func rejectsGoToTheDeadLetterFileAndTheThresholdGivesExit65() async throws {
        let dir = TemporaryDirectory()
        var text = CSV.file(floor: 1, minutes: 10) { _, c in "\(c)" }
        text += "2019-03-04 00:10:00,abc,1,1,1,1,1,1,1,1,1,1\n"
        text += "2019-03-04 00:11:00,1,1\n"
        text += "2019-03-04 00:05:00,1,1,1,1,1,1,1,1,1,1,1\n"  // duplicate minute, backward step
        text += "2019-03-04 00:20:00,1,1,1,1,1,1,1,1,1,1,1\n"  // 00:11–00:19 never valid: 9 missing
        text += "2"
        dir.write("in/2019Floor1.csv", text)
        var config = PipelineConfig.testing(dir)
        let result = try await run(config)
        #expect(result.exitStatus == .dataError)
        let f = try #require(result.report.files.first)
        #expect(f.rows == 15)
        #expect(f.rejectedRecords == 3)
        #expect(f.rejectedCells == ["bad_number": 1])
        #expect(f.rejectedRows == ["field_count": 1, "truncated_line": 1])
        #expect(f.duplicateTimestamps == 1)
        #expect(f.backwardSteps == 1)
        #expect(f.missingMinutes == 9)
        #expect(!f.passed)
        let letters = try deadLetters(result)
        #expect(letters.map(\.line) == [12, 13, 16])
        #expect(letters[0].column == 21)
        #expect(letters[0].code == .badNumber)
        #expect(letters[0].raw == "2019-03-04 00:10:00,abc,1,1,1,1,1,1,1,1,1,1")
        #expect(letters[0].sensorID == "f1_z1_light")
        #expect(letters[2].raw == "2")
        #expect(result.diagnostics.first?.description.hasPrefix("2019Floor1.csv:12:21: error: ") == true)
        // Within a generous threshold the same file passes; a settings change makes the run stale.
        config.rejectThreshold = 0.5
        let relaxed = try await run(config)
        #expect(!relaxed.upToDate)
        #expect(relaxed.exitStatus == .ok)
    }

    @Test func anUnchangedRerunIsUpToDateAndAChangedInputIsNot() async throws {
        let dir = TemporaryDirectory()
        let path = dir.write("in/2019Floor3.csv", CSV.file(floor: 3, minutes: 50) { r, _ in "\(r)" })
        let config = PipelineConfig.testing(dir)
        let first = try await run(config)
        let second = try await run(config)
        #expect(second.upToDate)
        #expect(second.manifest.runID == first.manifest.runID)
        let forced = try await run(config, force: true)
        #expect(!forced.upToDate)
        #expect(forced.manifest.previousRunID == first.manifest.runID)
        try Data(CSV.file(floor: 3, minutes: 51) { r, _ in "\(r)" }.utf8).write(to: URL(fileURLWithPath: path))
        let changed = try await run(config)
        #expect(!changed.upToDate)
        #expect(changed.report.files[0].rows == 51)
    }

    @Test func aHeaderErrorStopsThatFileOnlyAndNamesTheLocation() async throws {
        let dir = TemporaryDirectory()
        dir.write("in/2019Floor1.csv", "Date,z1_Light(kW),Bogus\n2019-01-01 00:00:00,1,2\n")
        dir.write("in/2019Floor2.csv", CSV.file(floor: 2, minutes: 5) { _, _ in "1" })
        dir.write("in/2019Floor3.csv", [0xFF, 0xFE, 0x44, 0x00])
        dir.write("in/2019Floor4.csv", "")
        let result = try await run(.testing(dir))
        #expect(result.exitStatus == .dataError)
        let byName = Dictionary(uniqueKeysWithValues: result.report.files.map { ($0.file, $0) })
        #expect(
            byName["2019Floor1.csv"]?.headerError?.hasPrefix("2019Floor1.csv:1:19: error: bad header: unknown column")
                == true)
        #expect(byName["2019Floor2.csv"]?.passed == true)
        #expect(byName["2019Floor2.csv"]?.readings == 5 * 36)
        #expect(byName["2019Floor3.csv"]?.headerError?.contains("UTF-16") == true)
        #expect(byName["2019Floor4.csv"]?.headerError?.contains("empty") == true)
    }

    @Test func bomAndCRLFAreAccepted() async throws {
        let dir = TemporaryDirectory()
        let text = CSV.file(floor: 5, minutes: 20) { r, c in c % 3 == 0 ? "" : "0.\(r)" }.replacingOccurrences(
            of: "\n", with: "\r\n")
        dir.write("in/2018Floor5.csv", [0xEF, 0xBB, 0xBF] + Array(text.utf8))
        let result = try await run(.testing(dir))
        #expect(result.exitStatus == .ok)
        #expect(result.report.files[0].hadBOM)
        #expect(result.report.files[0].readings == 20 * 19)
    }

    @Test func missingInputIsExit66AndAFileWithoutAFloorIs65() async throws {
        let dir = TemporaryDirectory()
        let missing = await #expect(throws: PipelineError.self) { try await run(.testing(dir)) }
        #expect(missing?.exitStatus == .noInput)
        dir.write("in/readings.csv", "Date\n")
        let noFloor = await #expect(throws: PipelineError.self) { try await run(.testing(dir)) }
        #expect(noFloor?.exitStatus == .dataError)
    }

    @Test func aSecondRunOnTheSameWorkDirIsRefusedWhileTheFirstHoldsTheLock() async throws {
        let dir = TemporaryDirectory()
        dir.write("in/2019Floor1.csv", CSV.file(floor: 1, minutes: 5) { _, _ in "1" })
        let lock = try WorkDirLock(directory: dir.path + "/work")
        let error = await #expect(throws: PipelineError.self) { try await run(.testing(dir)) }
        #expect(error?.exitStatus == .cantCreate)
        withExtendedLifetime(lock) {}
    }
}
