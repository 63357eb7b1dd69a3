import Foundation
import Logging
import Testing

@testable import BEMSCore

/// One hostile input of `Fixtures/hostile/<name>/` and what validate and normalize must make of it
/// (`Fixtures/hostile/expected.json`).
struct HostileCase: Decodable, Sendable, CustomTestStringConvertible {
    /// The folder under `Fixtures/hostile/`, holding exactly one `<year>Floor<n>.csv`.
    var name: String
    /// What the case is about.
    var about: String
    var file: String
    /// Exit status of validate with the default `rejectThreshold`: 0 or 65.
    var exit: Int32
    /// A substring of the header diagnostic, when the header stops the file.
    var headerError: String?
    /// `file:line:column` of the header diagnostic.
    var headerLocation: String?
    var rows: Int
    var rejectedRows: [String: Int]
    var rejectedCells: [String: Int]
    var readings: Int
    var duplicateTimestamps: Int?
    var backwardSteps: Int?
    /// Every dead letter as `line:column code`, in file order.
    var deadLetters: [String]
    /// Data lines rejected whole (1-based line numbers of the file).
    var rejectedLines: [Int]
    /// Rejected cells as `line:field` (field 0 is `Date`).
    var rejectedFields: [String]

    var testDescription: String { name }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hostile").path

    static let all: [HostileCase] = {
        let data = FileManager.default.contents(atPath: directory + "/expected.json")!
        return try! JSONDecoder().decode([HostileCase].self, from: data)
    }()
}

@Suite struct HostileInputTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A work dir with the case's file copied into `in/`.
    func stage(_ file: String, bytes: [UInt8]) -> (TemporaryDirectory, PipelineConfig) {
        let dir = TemporaryDirectory()
        dir.write("in/" + file, bytes)
        return (dir, .testing(dir))
    }

    func validate(_ config: PipelineConfig, force: Bool = false) async throws -> ValidateStage.Result {
        var options = ValidateStage.Options(config: config, env: "dev")
        options.force = force
        return try await ValidateStage.run(options, logger: logger)
    }

    func normalize(_ config: PipelineConfig) async throws -> NormalizeStage.Result {
        var options = NormalizeStage.Options(config: config, env: "dev")
        options.sample = 1
        return try await NormalizeStage.run(options, logger: logger)
    }

    func deadLetters(_ result: ValidateStage.Result) throws -> [DeadLetter] {
        let text = try String(contentsOfFile: result.runDirectory + "/dead-letter.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(DeadLetter.self, from: Data($0.utf8)) }
    }

    /// Every reading in the current normalize run's chunks.
    func chunkReadings(_ result: NormalizeStage.Result) throws -> [SourceReading] {
        var out: [SourceReading] = []
        for record in result.manifest.chunks {
            let (_, data) = try ChunkReader.decode(try ChunkFile.read(result.runDirectory + "/" + record.file))
            for i in 0..<data.count {
                out.append(
                    SourceReading(
                        sensorID: data.sensorIDs[Int(data.sensorIndexes[i])], utc: data.timestamps[i],
                        scaled: data.values[i]))
            }
        }
        return out
    }

    // MARK: - The committed corpus

    @Test(arguments: HostileCase.all)
    func hostileFileGivesTheDocumentedOutcome(_ c: HostileCase) async throws {
        let bytes = try #require(FileManager.default.contents(atPath: "\(HostileCase.directory)/\(c.name)/\(c.file)"))
        #expect(bytes.count < 100_000)
        let (dir, config) = stage(c.file, bytes: Array(bytes))

        let result = try await validate(config)
        #expect(result.exitStatus.rawValue == c.exit)
        let f = try #require(result.report.files.first)
        #expect(f.rows == c.rows)
        #expect(f.rejectedRows == c.rejectedRows)
        #expect(f.rejectedCells == c.rejectedCells)
        #expect(f.readings == c.readings)
        if let d = c.duplicateTimestamps { #expect(f.duplicateTimestamps == d) }
        if let b = c.backwardSteps { #expect(f.backwardSteps == b) }
        let letters = try deadLetters(result)
        #expect(letters.map { "\($0.line):\($0.column) \($0.code.rawValue)" } == c.deadLetters)
        #expect(letters.allSatisfy { $0.file == c.file && !$0.message.isEmpty })
        // Located diagnostics, `file:line:column: error: … [code]`, first the header's when there is one.
        for diagnostic in result.diagnostics {
            #expect(diagnostic.description.hasPrefix("\(c.file):\(diagnostic.line):\(diagnostic.column): error: "))
            #expect(diagnostic.line >= 1 && diagnostic.column >= 1)
        }
        if let headerError = c.headerError {
            let text = try #require(f.headerError)
            #expect(text.contains(headerError))
            #expect(text.hasPrefix(try #require(c.headerLocation) + ": error: "))
            #expect(!f.passed)
            // Normalize refuses a file whose header failed, whatever the threshold.
            await #expect(throws: PipelineError.self) { try await normalize(config) }
            return
        }
        #expect(f.headerError == nil)
        #expect(f.passed == (c.exit == 0))

        // Normalize keeps exactly the good readings: with a generous threshold when validate refused the file.
        var relaxed = config
        if c.exit != 0 {
            await #expect(throws: PipelineError.self) { try await normalize(config) }
            relaxed.rejectThreshold = 1
            #expect(try await validate(relaxed).exitStatus == .ok)
        }
        let normalized = try await normalize(relaxed)
        let got = try chunkReadings(normalized)
        let want = HostileOracle.goodReadings(
            bytes: Array(bytes), floor: try #require(InputFile.floor(fromFileName: c.file)),
            rejectedLines: Set(c.rejectedLines), rejectedFields: Set(c.rejectedFields))
        let missing = Set(want).subtracting(got)
        let extra = Set(got).subtracting(want)
        #expect(missing.isEmpty, "good readings that normalize dropped")
        #expect(extra.isEmpty, "readings normalize kept from rejected records")
        #expect(got.count == c.readings)
        #expect(got.count == want.count)
        withExtendedLifetime(dir) {}
    }

    @Test func everyCaseFolderIsListedInExpectedJSON() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: HostileCase.directory)
            .filter { !$0.hasSuffix(".json") }
        #expect(Set(folders) == Set(HostileCase.all.map(\.name)))
        for c in HostileCase.all {
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: HostileCase.directory + "/" + c.name) == [c.file])
            #expect(InputFile.floor(fromFileName: c.file) != nil)
        }
    }

    // MARK: - Generated inputs

    @Test func aTenMegabyteLineIsRejectedAndTheRestOfTheFileKept() async throws {
        let good = CSV.file(floor: 1, minutes: 3) { r, c in "\(r).\(c)" }
        var lines = good.split(separator: "\n").map(String.init)
        let huge = "2019-03-04 00:10:00," + String(repeating: "1", count: 10_000_000)
        lines.insert(huge, at: 2)
        let text = lines.joined(separator: "\n") + "\n"
        let (dir, config) = stage("2019Floor1.csv", bytes: Array(text.utf8))
        let result = try await validate(config)
        #expect(result.exitStatus == .dataError)
        let f = try #require(result.report.files.first)
        #expect(f.rows == 4)
        #expect(f.rejectedRows == ["line_too_long": 1])
        #expect(f.readings == 3 * 11)
        let letters = try deadLetters(result)
        #expect(letters.map(\.line) == [3])
        #expect(letters.first?.rawTruncated == true)
        #expect(
            result.diagnostics.first?.description.hasPrefix("2019Floor1.csv:3:1: error: line is 10000020 bytes") == true
        )
        var relaxed = config
        relaxed.rejectThreshold = 1
        _ = try await validate(relaxed)
        let got = try chunkReadings(try await normalize(relaxed))
        #expect(Set(got) == Set(IndependentCSV.readings(good, floor: 1)))
        withExtendedLifetime(dir) {}
    }

    /// Found by FuzzScanner (Fuzz/corpus/FuzzScanner/regression-overlong-crlf-length): an over-long CRLF line that
    /// crossed a read block was reported one byte longer (its `\r` counted) than the same line inside one block.
    @Test(arguments: [16, 100, 128, 200, 1 << 20])
    func anOverlongCRLFLineHasTheSameLengthWhereverTheBlocksEnd(blockSize: Int) throws {
        let dir = TemporaryDirectory()
        var text = "head\r\n"
        for length in [65, 79, 127, 128, 129, 300] {
            text += String(repeating: "x", count: length) + "\r\n"
        }
        text += String(repeating: "y", count: 200) + "\r"  // unterminated, CR kept out too
        let path = dir.write("2019Floor1.csv", text)
        let reader = try LineReader(path: path, maxLineBytes: 64, blockSize: blockSize)
        var lengths: [Int?] = []
        try reader.forEachLine { lengths.append($0.overlongLength) }
        #expect(lengths == [nil, 65, 79, 127, 128, 129, 300, 200])
    }

    /// Found by FuzzScanner (Fuzz/corpus/FuzzScanner/regression-limit-line-crlf-across-blocks): a line of exactly
    /// `maxLineBytes` bytes whose `\r\n` fell in the next read block was rejected as over-long.
    @Test func aLineOfExactlyTheLimitWithCRLFIsNeverOverlong() throws {
        let dir = TemporaryDirectory()
        for pad in 0..<64 {
            let text = String(repeating: "p", count: pad) + "\n" + String(repeating: "y", count: 64) + "\r\nz\n"
            let path = dir.write("pad\(pad).csv", text)
            let reader = try LineReader(path: path, maxLineBytes: 64, blockSize: 16)  // 128-byte blocks
            var lines: [(String, Int?)] = []
            try reader.forEachLine { lines.append((String(decoding: $0.bytes, as: UTF8.self), $0.overlongLength)) }
            #expect(lines.map(\.0) == [String(repeating: "p", count: pad), String(repeating: "y", count: 64), "z"])
            #expect(lines.map(\.1) == [nil, nil, nil], "pad \(pad)")
        }
    }

    @Test func aTenMegabyteFileWithoutANewlineIsAHeaderError() async throws {
        let (dir, config) = stage("2019Floor1.csv", bytes: Array(repeating: UInt8(ascii: "x"), count: 10_000_000))
        let result = try await validate(config)
        #expect(result.exitStatus == .dataError)
        #expect(result.report.files.first?.headerError?.hasPrefix("2019Floor1.csv:1:1: error: ") == true)
        #expect(result.report.files.first?.headerError?.contains("maxLineBytes") == true)
        withExtendedLifetime(dir) {}
    }
}

/// Computes the readings a hostile file should yield, independently of the BEMSCore parsers: quote-aware split,
/// Foundation `DateFormatter` and `Decimal`, and the lists of rejected lines and cells from expected.json.
enum HostileOracle {
    static func goodReadings(bytes: [UInt8], floor: Int, rejectedLines: Set<Int>, rejectedFields: Set<String>)
        -> [SourceReading]
    {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "Asia/Bangkok")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        var body = bytes
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body.removeFirst(3) }
        let lines = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line[...], as: UTF8.self)
        }
        guard let headerLine = lines.first else { return [] }
        let header = fields(headerLine)
        var out: [SourceReading] = []
        for (index, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let number = index + 1
            guard !rejectedLines.contains(number) else { continue }
            let cells = fields(line)
            guard cells.count == header.count, let date = formatter.date(from: cells[0]) else {
                Issue.record("line \(number) is neither good nor listed as rejected")
                continue
            }
            for (field, (name, cell)) in zip(header, cells).enumerated().dropFirst()
            where !cell.isEmpty && cell.lowercased() != "nan" && !rejectedFields.contains("\(number):\(field)") {
                guard let value = Decimal(string: cell, locale: Locale(identifier: "en_US_POSIX")) else {
                    Issue.record("cell \(number):\(field) \"\(cell)\" is neither a number nor listed as rejected")
                    continue
                }
                out.append(
                    SourceReading(
                        sensorID: IndependentCSV.sensorID(name, floor: floor), utc: Int64(date.timeIntervalSince1970),
                        scaled: (value * 10_000 as NSDecimalNumber).int64Value))
            }
        }
        return out
    }

    /// Splits a CSV line; a quote opens a quoted field only at the start of a field, and a quoted field loses its
    /// quotes (and may contain commas).
    static func fields(_ line: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quoted = false
        var atFieldStart = true
        for ch in line {
            defer { atFieldStart = ch == "," && !quoted }
            if ch == "\"", quoted || atFieldStart {
                quoted.toggle()
            } else if ch == ",", !quoted {
                out.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        out.append(current)
        return out
    }
}
