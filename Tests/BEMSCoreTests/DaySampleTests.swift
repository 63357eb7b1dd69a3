import Foundation
import Logging
import Testing

@testable import BEMSCore

@Suite struct DaySampleTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Days since 1970-01-01 of a civil date.
    func day(_ y: Int, _ m: Int, _ d: Int) -> Int { TimestampParser.daysFromCivil(year: y, month: m, day: d) }

    @Test func tenPercentOfTheRealDatasetsDays() {
        let sample = DaySample(fraction: 0.1)
        let days = day(2018, 7, 1)...day(2019, 12, 31)
        let kept = days.filter { sample.includes(day: $0) }
        #expect(days.count == 549)
        let share = Double(kept.count) / Double(days.count)
        #expect(abs(share - 0.1) <= 0.02, "kept \(kept.count) of \(days.count) days")
        // The documented figure (README, DaySample): 59 days.
        #expect(kept.count == 59)
    }

    @Test func theSameDaysEveryTimeAndNestedAcrossFractions() {
        let days = day(2018, 7, 1)...day(2019, 12, 31)
        let a = days.filter { DaySample(fraction: 0.1).includes(day: $0) }
        let b = days.filter { DaySample(fraction: 0.1).includes(day: $0) }
        #expect(a == b)
        // A bigger sample contains the smaller one (the threshold only grows), so raising the fraction adds days.
        let bigger = Set(days.filter { DaySample(fraction: 0.3).includes(day: $0) })
        #expect(Set(a).isSubset(of: bigger))
        #expect(abs(Double(bigger.count) / 549 - 0.3) <= 0.03)
        // The choice depends on the day alone, not on the range it is asked in (an incremental batch agrees).
        let later = (day(2019, 7, 1)...day(2019, 12, 31)).filter { DaySample(fraction: 0.1).includes(day: $0) }
        #expect(later == a.filter { $0 >= day(2019, 7, 1) })
    }

    @Test func boundaries() {
        let days = day(2019, 1, 1)...day(2019, 12, 31)
        #expect(days.allSatisfy { DaySample(fraction: 1).includes(day: $0) })
        #expect(!days.contains { DaySample(fraction: 0).includes(day: $0) })
        #expect(DaySample(fraction: 1).isComplete)
        #expect(!DaySample(fraction: 0.999).isComplete)
        #expect(days.filter { DaySample(fraction: 0.999).includes(day: $0) }.count >= 360)
        // Negative day numbers (before 1970) work too.
        _ = DaySample(fraction: 0.5).includes(day: -5)
        // SplitMix64's published first output for seed 0 (the state advances by the golden gamma first).
        #expect(DaySample.mix(0) == 0xE220_A839_7B1D_CDAF)
    }

    @Test func normalizeKeepsWholeSampledDaysAndRecordsTheSample() async throws {
        let dir = TemporaryDirectory()
        let generator = SampleGenerator(
            configuration: SampleConfiguration(
                start: CivilDate(year: 2019, month: 3, day: 1)!, days: 20, floors: [1, 4], seed: 5))
        _ = try generator.write(toDirectory: dir.path + "/in")
        let config = PipelineConfig.testing(dir)
        _ = try await ValidateStage.run(.init(config: config, env: "dev"), logger: logger)

        // The environment's sample: dev keeps 10% of days.
        let sampled = try await NormalizeStage.run(.init(config: config, env: "dev"), logger: logger)
        let record = try #require(sampled.manifest.sample)
        #expect(record.fraction == 0.1)
        #expect(record.daysSeen == 20)
        let expectedDays = (0..<20).map { day(2019, 3, 1) + $0 }.filter { DaySample(fraction: 0.1).includes(day: $0) }
        #expect(record.daysKept == expectedDays.count)
        let keptNames = Set(expectedDays.map { TimestampParser.formatDay($0) })
        #expect(Set(sampled.manifest.chunks.map(\.day)) == keptNames)

        // Each kept day is complete: the same readings as an unsampled run for that day.
        var full = NormalizeStage.Options(config: config, env: "prod")
        full.force = true
        let everything = try await NormalizeStage.run(full, logger: logger)
        #expect(everything.manifest.sample?.fraction == 1)
        #expect(everything.manifest.sample?.readingsSkipped == 0)
        var perDayFull: [String: Int] = [:]
        for c in everything.manifest.chunks { perDayFull["\(c.floor)/\(c.day)", default: 0] += c.rows }
        var perDaySampled: [String: Int] = [:]
        for c in sampled.manifest.chunks { perDaySampled["\(c.floor)/\(c.day)", default: 0] += c.rows }
        #expect(!perDaySampled.isEmpty)
        for (key, rows) in perDaySampled { #expect(perDayFull[key] == rows, "\(key)") }
        let total = everything.manifest.totals["readings"]!
        #expect(sampled.manifest.totals["readings"]! + record.readingsSkipped == total)

        // A rerun with the same sample picks the same days (and is up to date); another fraction is a new run.
        var again = NormalizeStage.Options(config: config, env: "dev")
        again.force = true
        let rerun = try await NormalizeStage.run(again, logger: logger)
        // (chunk bytes differ only by the run id in their metadata)
        #expect(rerun.manifest.chunks.map { "\($0.floor)/\($0.day)/\($0.rows)" } == sampled.manifest.chunks.map { "\($0.floor)/\($0.day)/\($0.rows)" })
        var half = NormalizeStage.Options(config: config, env: "dev")
        half.sample = 0.5
        let halfRun = try await NormalizeStage.run(half, logger: logger)
        #expect(!halfRun.upToDate)
        #expect(halfRun.manifest.sample?.fraction == 0.5)
        #expect(PipelineStatus.stages(config: config, env: "dev", sample: 0.5)[1].state == "up-to-date")
        #expect(PipelineStatus.stages(config: config, env: "dev")[1].state == "stale")
        #expect(PipelineStatus.stages(config: config, env: "dev", sample: 0.5)[1].sample?.daysKept == halfRun.manifest.sample?.daysKept)
    }
}
