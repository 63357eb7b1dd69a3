import Foundation
import Logging
import Testing

@testable import BEMSCore

/// One reading as the test reads it straight from the CSV text, independently of the pipeline's parsers.
struct SourceReading: Hashable {
    var sensorID: String
    var utc: Int64
    var scaled: Int64
}

/// An independent reader of CU-BEMS CSV text: Foundation `Decimal` and `DateFormatter`, no BEMSCore parsing code.
enum IndependentCSV {
    static func readings(_ text: String, floor: Int) -> [SourceReading] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "Asia/Bangkok")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        var header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if header[0].hasPrefix("\u{FEFF}") { header[0].removeFirst() }
        var out: [SourceReading] = []
        for line in lines {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard cells.count == header.count, let date = formatter.date(from: cells[0]) else { continue }
            for (name, cell) in zip(header.dropFirst(), cells.dropFirst()) where !cell.isEmpty {
                let scaled = (Decimal(string: cell)! * 10_000 as NSDecimalNumber).int64Value
                out.append(
                    SourceReading(
                        sensorID: sensorID(name, floor: floor), utc: Int64(date.timeIntervalSince1970), scaled: scaled))
            }
        }
        return out
    }

    /// The documented mapping, written out again: `zN_ACk(kW)` → `f<floor>_zN_ack`, etc.
    static func sensorID(_ header: String, floor: Int) -> String {
        let parts = header.split(separator: "_", maxSplits: 1)
        let zone = parts[0]
        let device = parts[1]
        let suffix: String
        switch device {
        case "Light(kW)": suffix = "light"
        case "Plug(kW)": suffix = "plug"
        case "S1(degC)": suffix = "s1_temp"
        case "S1(RH%)": suffix = "s1_rh"
        case "S1(lux)": suffix = "s1_lux"
        default: suffix = device.replacingOccurrences(of: "(kW)", with: "").lowercased()
        }
        return "f\(floor)_\(zone)_\(suffix)"
    }
}

@Suite struct NormalizeStageTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func validate(_ config: PipelineConfig) async throws -> ValidateStage.Result {
        try await ValidateStage.run(.init(config: config, env: "dev"), logger: logger)
    }

    func normalize(_ config: PipelineConfig, force: Bool = false, sample: Double = 1) async throws
        -> NormalizeStage.Result
    {
        var options = NormalizeStage.Options(config: config, env: "dev")
        options.force = force
        options.sample = sample
        return try await NormalizeStage.run(options, logger: logger)
    }

    /// Every reading of the current normalize run, decoded from its chunks after checking their checksums.
    func chunkReadings(_ result: NormalizeStage.Result) throws -> [SourceReading] {
        var out: [SourceReading] = []
        for record in result.manifest.chunks {
            let bytes = try ChunkFile.read(result.runDirectory + "/" + record.file)
            #expect(Digest.sha256Hex(bytes) == record.sha256)
            let (header, data) = try ChunkReader.decode(bytes)
            #expect(header.rowCount == record.rows)
            #expect(header.metadata["floor"] == String(record.floor))
            for i in 0..<data.count {
                out.append(
                    SourceReading(
                        sensorID: data.sensorIDs[Int(data.sensorIndexes[i])], utc: data.timestamps[i],
                        scaled: data.values[i]))
            }
        }
        return out
    }

    @Test func generatedFilesComeBackExactlyInCountAndValue() async throws {
        let dir = TemporaryDirectory()
        let sample = SampleGenerator(
            configuration: SampleConfiguration(
                start: CivilDate(year: 2019, month: 10, day: 21)!, days: 2, floors: [1, 2, 6], seed: 7,
                lineEnding: .crlf,
                byteOrderMark: true, truncateFloor6: true))
        _ = try sample.write(toDirectory: dir.path + "/in")
        let config = PipelineConfig.testing(dir)
        #expect(try await validate(config).exitStatus == .ok)
        let result = try await normalize(config)
        #expect(!result.upToDate)

        var expected: [SourceReading] = []
        for floor in [1, 2, 6] {
            let text = try String(contentsOfFile: dir.path + "/in/2019Floor\(floor).csv", encoding: .utf8)
            expected += IndependentCSV.readings(text, floor: floor)
        }
        let actual = try chunkReadings(result)
        #expect(actual.count == expected.count)
        #expect(result.manifest.totals["readings"] == expected.count)
        #expect(Set(actual) == Set(expected))
        #expect(Set(actual).count == actual.count)
        // One chunk per floor and Bangkok day.
        #expect(Set(result.manifest.chunks.map { "\($0.floor)/\($0.day)" }).count == result.manifest.chunks.count)
        #expect(result.manifest.chunks.allSatisfy { ["2019-10-21", "2019-10-22"].contains($0.day) })
    }

    @Test func inspectDumpsTheRowsAsCSV() async throws {
        let dir = TemporaryDirectory()
        dir.write(
            "in/2019Floor1.csv",
            CSV.file(floor: 1, start: "2019-01-01 08:00:00", minutes: 2) { r, c in
                c == 8 && r == 1 ? "4762.43" : (c == 0 ? "" : "0.0\(c)")
            })
        let config = PipelineConfig.testing(dir)
        _ = try await validate(config)
        let result = try await normalize(config)
        let record = try #require(result.manifest.chunks.first)
        let (header, data) = try ChunkReader.decode(try ChunkFile.read(result.runDirectory + "/" + record.file))
        var lines: [String] = []
        ChunkInspector.forEachCSVLine(data, converter: try LocalTimeConverter(identifier: "Asia/Bangkok")) {
            lines.append($0)
        }
        #expect(
            ChunkInspector.csvHeader(header)
                == "timestamp,sensor_id,floor_number,equipment_type,reading_value,unit,status")
        #expect(lines.count == 20)
        #expect(lines.contains("2019-01-01T08:01:00+07:00,f1_z3_light,1,light,4762.4300,kW,anomaly"))
        #expect(lines.contains("2019-01-01T08:00:00+07:00,f1_z1_plug,1,plug,0.0100,kW,normal"))
        var utc: [String] = []
        ChunkInspector.forEachCSVLine(data, converter: try LocalTimeConverter(identifier: "UTC")) { utc.append($0) }
        #expect(utc.contains("2019-01-01T01:00:00Z,f1_z1_plug,1,plug,0.0100,kW,normal"))
        let text = ChunkInspector.describe(
            header, path: record.file, converter: try LocalTimeConverter(identifier: "Asia/Bangkok"))
        #expect(text.contains("rows: 20"))
        #expect(text.contains("f1_z3_light: 2 readings, sum 4762.5100"))
    }

    @Test func rejectedRecordsAreSkippedAndGoodOnesKept() async throws {
        let dir = TemporaryDirectory()
        var text = CSV.file(floor: 1, minutes: 3000) { _, c in "\(c)" }
        text += "2019-03-06 02:00:00,1,abc,1,1,1,1,1,1,1,1,1\n2019-03-06 02:01:00,1\n"
        dir.write("in/2019Floor1.csv", text)
        let config = PipelineConfig.testing(dir)
        #expect(try await validate(config).exitStatus == .ok)  // 2 of 3002 rows: within 0.1%
        let result = try await normalize(config)
        #expect(result.manifest.totals["readings"] == 3000 * 11 + 10)
    }

    @Test func refusesInputsThatWereNotValidatedOrChangedOrFailed() async throws {
        let dir = TemporaryDirectory()
        let path = dir.write("in/2019Floor1.csv", CSV.file(floor: 1, minutes: 10) { _, _ in "1" })
        let config = PipelineConfig.testing(dir)
        let none = await #expect(throws: PipelineError.self) { try await normalize(config) }
        #expect(none?.exitStatus == .noInput)
        _ = try await validate(config)
        try Data(CSV.file(floor: 1, minutes: 11) { _, _ in "2" }.utf8).write(to: URL(fileURLWithPath: path))
        let changed = await #expect(throws: PipelineError.self) { try await normalize(config) }
        #expect(changed?.exitStatus == .noInput)
        #expect(changed?.message.contains("changed since validate") == true)
        try Data((CSV.file(floor: 1, minutes: 11) { _, _ in "x" }).utf8).write(to: URL(fileURLWithPath: path))
        #expect(try await validate(config).exitStatus == .dataError)
        let failed = await #expect(throws: PipelineError.self) { try await normalize(config) }
        #expect(failed?.exitStatus == .dataError)
    }

    @Test func upToDateRerunsAndRollbackToThePreviousRun() async throws {
        let dir = TemporaryDirectory()
        let path = dir.write("in/2019Floor3.csv", CSV.file(floor: 3, minutes: 100) { r, _ in "\(r % 50)" })
        var config = PipelineConfig.testing(dir)
        _ = try await validate(config)
        let first = try await normalize(config)
        let again = try await normalize(config)
        #expect(again.upToDate)
        #expect(again.manifest.runID == first.manifest.runID)
        // A new input version makes both stages stale; the new run keeps the old one for rollback.
        try Data(CSV.file(floor: 3, minutes: 200) { r, _ in "\(r % 50)" }.utf8).write(to: URL(fileURLWithPath: path))
        _ = try await validate(config)
        let second = try await normalize(config)
        #expect(!second.upToDate)
        #expect(second.manifest.previousRunID == first.manifest.runID)
        #expect(second.manifest.totals["readings"] == 200 * 29)
        let work = WorkDir(root: config.workDir)
        let (rolled, current) = try work.rollback(.normalize)
        #expect(rolled == second.manifest.runID)
        #expect(current == first.manifest.runID)
        #expect(try work.currentManifest(.normalize)?.totals["readings"] == 100 * 29)
        #expect(
            FileManager.default.fileExists(
                atPath: work.runDirectory(.normalize, second.manifest.runID) + "/manifest.json"))
        #expect(work.rolledBackRunIDs(.normalize) == [second.manifest.runID])
        // Rolling back again reaches "no run"; once more is an error.
        _ = try work.rollback(.normalize)
        #expect(work.currentRunID(.normalize) == nil)
        #expect(throws: PipelineError.self) { try work.rollback(.normalize) }
        // A settings change (chunking) makes normalize stale.
        config.chunk.maxRows = 1000
        let rechunked = try await normalize(config)
        #expect(!rechunked.upToDate)
        #expect(rechunked.manifest.chunks.count > 1)
        #expect(rechunked.manifest.chunks.allSatisfy { $0.rows <= 1000 })
    }

    @Test func aRunMarkedStaleByALaterStageIsRedoneByAPlainRerun() async throws {
        let dir = TemporaryDirectory()
        dir.write("in/2019Floor1.csv", CSV.file(floor: 1, minutes: 10) { _, _ in "1" })
        let config = PipelineConfig.testing(dir)
        _ = try await validate(config)
        let first = try await normalize(config)
        let work = WorkDir(root: config.workDir)
        #expect(work.staleReason(.normalize, first.manifest.runID) == nil)
        try work.markStale(.normalize, first.manifest.runID, reason: "chunks/x.bemc fails its SHA-256 check")
        #expect(work.staleReason(.normalize, first.manifest.runID) == "chunks/x.bemc fails its SHA-256 check")
        let status = PipelineStatus.stages(config: config)[1]
        #expect(status.state == "stale")
        #expect(status.reason?.contains("refused by a later stage (chunks/x.bemc") == true)
        let second = try await normalize(config)
        #expect(!second.upToDate)
        #expect(second.manifest.previousRunID == first.manifest.runID)
        #expect(try await normalize(config).upToDate)
    }

    @Test func statusShowsUpToDateAndStaleStages() async throws {
        let dir = TemporaryDirectory()
        let path = dir.write("in/2019Floor1.csv", CSV.file(floor: 1, minutes: 10) { _, _ in "1" })
        let config = PipelineConfig.testing(dir)
        #expect(
            PipelineStatus.stages(config: config).map(\.state) == [
                "never-run", "never-run", "never-run", "never-run", "never-run",
            ])
        _ = try await validate(config)
        _ = try await normalize(config)
        #expect(PipelineStatus.stages(config: config, sample: 1).map(\.state).prefix(2) == ["up-to-date", "up-to-date"])
        try Data(CSV.file(floor: 1, minutes: 12) { _, _ in "1" }.utf8).write(to: URL(fileURLWithPath: path))
        let stale = PipelineStatus.stages(config: config, sample: 1)
        #expect(stale.map(\.state).prefix(2) == ["stale", "stale"])
        #expect(stale[0].reason?.contains("changed") == true)
    }
}
