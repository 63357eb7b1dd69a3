import Crypto
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// A small deterministic generator (SplitMix64), so tests do not depend on the system RNG.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Test data builders.
enum ChunkSamples {
    /// Day-of-floor-like data: `sensors` columns × `minutes` one-minute rows, ordered by (timestamp, column) as the
    /// CSV parser produces them. A third of the sensors are temperatures (random walk, 0.01 °C), a third power
    /// (0 at night, 8–30 kW by day at 0.01 kW), a third lux (mostly 0).
    static func realistic(sensors: Int = 36, minutes: Int = 1440, seed: UInt64 = 1) -> ChunkData {
        var random = SeededRandom(state: seed)
        var data = ChunkData(metadata: ["floor": "3", "day": "2019-03-01", "source": "2019Floor3.csv"])
        for s in 0..<sensors { _ = data.addSensor("f3_z\(s / 6 + 1)_sensor\(s)") }
        data.reserveCapacity(sensors * minutes)
        var temperature = (0..<sensors).map { _ in Int64.random(in: 2400...2800, using: &random) * 100 }
        var power = (0..<sensors).map { _ in Int64.random(in: 800...3000, using: &random) * 100 }
        let start: Int64 = 1_551_398_400  // 2019-03-01T00:00:00Z
        for minute in 0..<minutes {
            let t = start + Int64(minute) * 60
            let day = minute % 1440 >= 7 * 60 && minute % 1440 < 19 * 60
            for s in 0..<sensors {
                let value: Int64
                switch s % 3 {
                case 0:
                    if Int.random(in: 0..<4, using: &random) == 0 {
                        temperature[s] += Int64.random(in: -2...2, using: &random) * 100
                    }
                    value = temperature[s]
                case 1:
                    if day {
                        power[s] = min(
                            3000_00, max(800_00, power[s] + Int64.random(in: -20...20, using: &random) * 100))
                        value = power[s]
                    } else {
                        value = 0
                    }
                default:
                    value =
                        day && Int.random(in: 0..<10, using: &random) == 0
                        ? Int64.random(in: 1...500, using: &random) * 10_000 : 0
                }
                let status: ReadingStatus = Int.random(in: 0..<1000, using: &random) == 0 ? .anomaly : .normal
                data.append(sensorIndex: UInt32(s), timestamp: t, value: value, status: status)
            }
        }
        return data
    }

    /// Cases for the round-trip test.
    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case empty, emptyWithSensors, oneRow, manySensors, outOfOrderTimestamps, duplicateKeys, edgeValues,
            negativeValues, optionalColumns, optionalColumnsAllNil, unusedSensors, alreadyCanonical, realistic

        var testDescription: String { rawValue }

        var data: ChunkData {
            var random = SeededRandom(state: UInt64(rawValue.utf8.count) &* 7919)
            switch self {
            case .empty:
                return ChunkData()
            case .emptyWithSensors:
                return ChunkData(sensorIDs: ["a", "b"], metadata: ["stage": "normalize"])
            case .oneRow:
                return ChunkData(
                    sensorIDs: ["f1_z1_light"], timestamps: [1_546_300_800], sensorIndexes: [0],
                    values: [12_345], statuses: [.normal], metadata: ["run": "r1"])
            case .manySensors:
                var data = ChunkData()
                for s in 0..<500 { _ = data.addSensor("f\(s % 7 + 1)_z\(s)_ac\(s % 14 + 1)") }
                for i in 0..<5000 {
                    data.append(
                        sensorIndex: UInt32.random(in: 0..<500, using: &random),
                        timestamp: 1_546_300_800 + Int64(i / 500) * 60,
                        value: Int64.random(in: -1_000_000...1_000_000, using: &random), status: .normal)
                }
                return data
            case .outOfOrderTimestamps:
                var data = ChunkData(sensorIDs: ["x", "y", "z"])
                for _ in 0..<3000 {
                    data.append(
                        sensorIndex: UInt32.random(in: 0..<3, using: &random),
                        timestamp: Int64.random(in: -5_000_000...5_000_000, using: &random),
                        value: Int64.random(in: 0...99_999, using: &random),
                        status: Bool.random(using: &random) ? .normal : .anomaly)
                }
                return data
            case .duplicateKeys:
                // Same (sensor, timestamp) several times with different values: input order must survive.
                var data = ChunkData(sensorIDs: ["s0", "s1"])
                for i in 0..<400 {
                    data.append(
                        sensorIndex: UInt32(i % 2), timestamp: 1_000 + Int64((i / 2) % 5) * 60,
                        value: Int64(i), status: i % 3 == 0 ? .anomaly : .normal)
                }
                return data
            case .edgeValues:
                let m = ScaledDecimal.maxMagnitude
                let values: [Int64] = [m, -m, 0, m, -m, 1, -1, m - 1, -m + 1, m, -m, m]
                return ChunkData(
                    sensorIDs: ["edge"], timestamps: values.indices.map { Int64($0) * 60 },
                    sensorIndexes: values.map { _ in 0 }, values: values, statuses: values.map { _ in .normal },
                    actions: values.indices.map { $0 % 2 == 0 ? .update : .insert },
                    previousValues: values.indices.map { $0 % 2 == 0 ? ($0 % 4 == 0 ? -m : m) : nil },
                    previousStatuses: values.indices.map { $0 % 2 == 0 ? .anomaly : nil })
            case .negativeValues:
                var data = ChunkData(sensorIDs: ["neg_a", "neg_b"])
                for i in 0..<1000 {
                    data.append(
                        sensorIndex: UInt32(i % 2), timestamp: Int64.min / 2 + Int64(i) * 60,
                        value: -Int64.random(in: 0...ScaledDecimal.maxMagnitude, using: &random),
                        status: .normal)
                }
                return data
            case .optionalColumns:
                var data = ChunkData(sensorIDs: ["a", "b", "c"], metadata: ["stage": "dedupe", "run": "42"])
                for i in 0..<2000 {
                    let update = Int.random(in: 0..<5, using: &random) == 0
                    data.append(
                        sensorIndex: UInt32((i * 7) % 3), timestamp: Int64(2000 - i) * 60,
                        value: Int64.random(in: -9_999...9_999, using: &random), status: .normal,
                        action: update ? .update : .insert,
                        previousValue: update ? Int64.random(in: -9_999_999...9_999_999, using: &random) : nil,
                        previousStatus: update ? (Bool.random(using: &random) ? .anomaly : .normal) : nil)
                }
                return data
            case .optionalColumnsAllNil:
                var data = Case.oneRow.data
                data.actions = [.insert]
                data.previousValues = [nil]
                data.previousStatuses = [nil]
                return data
            case .unusedSensors:
                return ChunkData(
                    sensorIDs: ["unused0", "used", "unused2", "éàü-ünïcode"],
                    timestamps: [60, 0, 120], sensorIndexes: [3, 1, 3], values: [3, 2, 1],
                    statuses: [.normal, .anomaly, .normal], metadata: ["ключ": "значение", "": ""])
            case .alreadyCanonical:
                return ChunkSamples.realistic(sensors: 4, minutes: 100).canonicalized()
            case .realistic:
                return ChunkSamples.realistic(sensors: 36, minutes: 300)
            }
        }
    }

    /// The canonical order computed independently of the code under test: sort by (sensor, timestamp, input row).
    static func expectedCanonical(_ data: ChunkData) -> ChunkData {
        let order = data.timestamps.indices.sorted { a, b in
            (data.sensorIndexes[a], data.timestamps[a], a) < (data.sensorIndexes[b], data.timestamps[b], b)
        }
        var result = data
        result.timestamps = order.map { data.timestamps[$0] }
        result.sensorIndexes = order.map { data.sensorIndexes[$0] }
        result.values = order.map { data.values[$0] }
        result.statuses = order.map { data.statuses[$0] }
        result.actions = data.actions.map { column in order.map { column[$0] } }
        result.previousValues = data.previousValues.map { column in order.map { column[$0] } }
        result.previousStatuses = data.previousStatuses.map { column in order.map { column[$0] } }
        return result
    }

    /// Recomputes the preamble check and the SHA-256 footer after a test has edited a chunk on purpose.
    static func resealed(_ chunk: [UInt8]) -> [UInt8] {
        var bytes = chunk
        guard bytes.count >= 64 else { return bytes }
        let check = Array(SHA256.hash(data: bytes[0..<24]))
        for i in 0..<8 { bytes[24 + i] = check[i] }
        let body = bytes.count - 32
        let digest = Array(SHA256.hash(data: bytes[0..<body]))
        for i in 0..<32 { bytes[body + i] = digest[i] }
        return bytes
    }

    static func u32(_ bytes: [UInt8], _ at: Int) -> Int {
        (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
    }

    static func setU64(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// Adds a column (directory entry + block) to a chunk and reseals it, as a future writer might.
    static func addingColumn(
        to chunk: [UInt8], name: String, encoding: UInt8, flags: UInt8, rows: Int, block: [UInt8]
    ) -> [UInt8] {
        var bytes = chunk
        let headerLength = u32(bytes, 32)
        let directory = 36 + headerLength
        let columnCount = u32(bytes, directory)
        var offset = directory + 4
        var blockBytes = 0
        for _ in 0..<columnCount {
            let nameLength = Int(bytes[offset])
            offset += 1 + nameLength + 3 + 16
            blockBytes += (0..<8).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
            offset += 8
        }
        var entry: [UInt8] = [UInt8(name.utf8.count)] + Array(name.utf8) + [encoding, 0, flags]
        for value in [UInt64(rows), UInt64(block.count), UInt64(block.count)] {
            for i in 0..<8 { entry.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
        }
        let newCount = UInt32(columnCount + 1)
        for i in 0..<4 { bytes[directory + i] = UInt8(truncatingIfNeeded: newCount >> (8 * UInt32(i))) }
        bytes.insert(contentsOf: entry, at: offset)
        let footer = bytes.count - 32
        bytes.insert(contentsOf: block, at: footer)
        setU64(&bytes, 16, UInt64(bytes.count))
        _ = blockBytes
        return resealed(bytes)
    }
}

@Suite struct ChunkTests {
    // MARK: - Round trips

    @Test(arguments: ChunkSamples.Case.allCases)
    func writeThenReadGivesTheInputInCanonicalOrder(sample: ChunkSamples.Case) throws {
        let input = sample.data
        let bytes = try ChunkWriter.encode(input)
        let (header, decoded) = try ChunkReader.decode(bytes)
        let expected = ChunkSamples.expectedCanonical(input)
        #expect(decoded == expected)
        #expect(input.canonicalized() == expected)
        #expect(header.rowCount == input.count)
        #expect(header.formatVersion == 1)
        #expect(header.totalLength == bytes.count)
        #expect(header.hasActions == (input.actions != nil))
        #expect(header.hasPreviousValues == (input.previousValues != nil))
        #expect(header.hasPreviousStatuses == (input.previousStatuses != nil))
        #expect(try ChunkReader.readHeader(bytes) == header)
        // Encoding the decoded chunk again gives the same bytes: the format is canonical.
        #expect(try ChunkWriter.encode(decoded) == bytes)
    }

    @Test(arguments: ChunkSamples.Case.allCases)
    func headerStatisticsMatchIndependentlyComputedOnes(sample: ChunkSamples.Case) throws {
        let input = sample.data
        let header = try ChunkReader.readHeader(ChunkWriter.encode(input))
        #expect(header.sensors.map(\.sensorID) == input.sensorIDs)
        #expect(header.metadata == input.metadata)
        for (s, stats) in header.sensors.enumerated() {
            let rows = input.timestamps.indices.filter { input.sensorIndexes[$0] == UInt32(s) }
            #expect(stats.count == rows.count)
            #expect(stats.valueSum == rows.reduce(Int64(0)) { $0 + input.values[$1] })
            #expect(stats.minTimestamp == (rows.map { input.timestamps[$0] }.min() ?? 0))
            #expect(stats.maxTimestamp == (rows.map { input.timestamps[$0] }.max() ?? 0))
        }
        #expect(header.minTimestamp == (input.timestamps.min() ?? 0))
        #expect(header.maxTimestamp == (input.timestamps.max() ?? 0))
        #expect(header.valueSum == input.values.reduce(0, +))
    }

    @Test func encodingIsDeterministic() throws {
        let data = ChunkSamples.realistic(sensors: 6, minutes: 200)
        #expect(try ChunkWriter.encode(data) == ChunkWriter.encode(data))
    }

    @Test func reusedContextsGiveTheSameResultAsOneShotCalls() throws {
        let compressor = try ZstdCompressor()
        let decompressor = try ZstdDecompressor()
        for sample in [ChunkSamples.Case.realistic, .empty, .optionalColumns, .oneRow] {
            let data = sample.data
            let bytes = try ChunkWriter.encode(data, using: compressor)
            #expect(bytes == (try ChunkWriter.encode(data)))
            let (header, decoded) = try ChunkReader.decode(bytes, using: decompressor)
            #expect(decoded == ChunkSamples.expectedCanonical(data))
            #expect(header == (try ChunkReader.readHeader(bytes)))
        }
    }

    // MARK: - Integrity

    @Test func everyFlippedByteIsDetected() throws {
        let bytes = try ChunkWriter.encode(ChunkSamples.Case.optionalColumns.data)
        for position in bytes.indices {
            for mask: UInt8 in [0x01, 0x80] {
                var damaged = bytes
                damaged[position] ^= mask
                let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(damaged) }
                let expected: ChunkError.Code = position < 8 ? .badMagic : .checksumMismatch
                #expect(error?.code == expected, "byte \(position) mask \(mask): \(String(describing: error))")
                #expect(throws: ChunkError.self) { _ = try ChunkReader.readHeader(damaged) }
            }
        }
    }

    @Test func everyTruncationIsReportedAsTruncated() throws {
        let bytes = try ChunkWriter.encode(ChunkSamples.Case.duplicateKeys.data)
        for length in 0..<bytes.count {
            let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(Array(bytes.prefix(length))) }
            #expect(error?.code == .truncated, "length \(length): \(String(describing: error))")
            #expect(error?.offset == length)
        }
    }

    @Test func headerCanBeReadWithoutHashingWhenColumnsAreDamaged() throws {
        let input = ChunkSamples.Case.realistic.data
        var bytes = try ChunkWriter.encode(input)
        let header = try ChunkReader.readHeader(bytes)
        let value = try #require(header.columns.first { $0.name == "value" })
        bytes[value.offset + value.compressedLength / 2] ^= 0xFF
        #expect(try ChunkReader.readHeader(bytes, verifyChecksum: false) == header)
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.readHeader(bytes) }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.offset == bytes.count - 32)
    }

    @Test func trailingBytesAreRejected() throws {
        let bytes = try ChunkWriter.encode(ChunkSamples.Case.oneRow.data)
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(bytes + [0]) }
        #expect(error?.code == .corrupt)
        #expect(error?.offset == bytes.count)
    }

    @Test func otherFilesAreNotChunks() {
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(Array("Date,z1_Light(kW)\n".utf8)) }
        #expect(error?.code == .badMagic)
    }

    @Test func newerFormatVersionIsUnsupported() throws {
        var bytes = try ChunkWriter.encode(ChunkSamples.Case.oneRow.data)
        bytes[8] = 2
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(ChunkSamples.resealed(bytes)) }
        #expect(error?.code == .unsupportedVersion)
        #expect(error?.offset == 8)
    }

    @Test func hugeDeclaredRowCountIsRefusedWithoutAllocating() throws {
        var bytes = try ChunkWriter.encode(ChunkSamples.Case.oneRow.data)
        ChunkSamples.setU64(&bytes, 36, UInt64(1) << 40)  // header row count
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(ChunkSamples.resealed(bytes)) }
        #expect(error?.code == .corrupt)
        #expect(error?.offset == 36)
    }

    @Test func unknownOptionalColumnIsSkipped() throws {
        let input = ChunkSamples.Case.duplicateKeys.data
        let bytes = try ChunkWriter.encode(input)
        let extended = ChunkSamples.addingColumn(
            to: bytes, name: "future_quality", encoding: 99, flags: 0,
            rows: input.count, block: [1, 2, 3, 4, 5])
        let (header, decoded) = try ChunkReader.decode(extended)
        #expect(decoded == ChunkSamples.expectedCanonical(input))
        #expect(header.columns.map(\.name).last == "future_quality")
        #expect(header.columns.last?.compressedLength == 5)
    }

    @Test func unknownRequiredColumnIsUnsupported() throws {
        let input = ChunkSamples.Case.oneRow.data
        let extended = ChunkSamples.addingColumn(
            to: try ChunkWriter.encode(input), name: "future_key", encoding: 99, flags: 1, rows: 1, block: [7])
        let error = #expect(throws: ChunkError.self) { _ = try ChunkReader.decode(extended) }
        #expect(error?.code == .unsupportedVersion)
    }

    @Test func resealedRandomDamageNeverCrashes() throws {
        // An attacker (or a buggy writer) can recompute the checksums; the structure checks must still hold.
        let bytes = try ChunkWriter.encode(ChunkSamples.Case.optionalColumns.data)
        let input = ChunkSamples.expectedCanonical(ChunkSamples.Case.optionalColumns.data)
        var random = SeededRandom(state: 99)
        var rejected = 0
        for _ in 0..<3000 {
            var damaged = bytes
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let position = Int.random(in: 8..<(bytes.count - 32), using: &random)
                damaged[position] = UInt8.random(in: 0...255, using: &random)
            }
            do {
                let (_, decoded) = try ChunkReader.decode(ChunkSamples.resealed(damaged))
                // Damage that survives every check must still describe consistent data; changed bytes inside a
                // zstd block can only get here if the frame decoded to the same content.
                _ = decoded == input
            } catch {
                rejected += 1
            }
        }
        #expect(rejected > 2500)
    }

    // MARK: - Writer input checks

    @Test func writerRejectsInvalidInput() {
        let valid = ChunkSamples.Case.oneRow.data
        var outOfRange = valid
        outOfRange.values = [ScaledDecimal.maxMagnitude + 1]
        var badIndex = valid
        badIndex.sensorIndexes = [1]
        var shortColumn = valid
        shortColumn.statuses = []
        var duplicateIDs = valid
        duplicateIDs.sensorIDs = ["f1_z1_light", "f1_z1_light"]
        var badPrevious = valid
        badPrevious.actions = [.update]
        badPrevious.previousValues = [Int64.min]
        badPrevious.previousStatuses = [.normal]
        var shortOptional = valid
        shortOptional.actions = []
        for data in [outOfRange, badIndex, shortColumn, duplicateIDs, badPrevious, shortOptional] {
            let error = #expect(throws: ChunkError.self) { _ = try ChunkWriter.encode(data) }
            #expect(error?.code == .invalidInput)
        }
    }

    // MARK: - Files

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/bems-chunk-test-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: try #require(path))
    }

    static func listing(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    @Test func fileWriteIsAtomicAndReplacesTheWholeFile() throws {
        let directory = try Self.temporaryDirectory()
        defer {
            for name in Self.listing(directory) { unlink("\(directory)/\(name)") }
            rmdir(directory)
        }
        let path = "\(directory)/f3-2019-03-01.chunk"
        let big = try ChunkWriter.encode(ChunkSamples.realistic(sensors: 12, minutes: 600))
        try ChunkFile.write(big, to: path)
        #expect(try ChunkFile.read(path) == big)
        let small = try ChunkWriter.encode(ChunkSamples.Case.oneRow.data)
        try ChunkFile.write(small, to: path)
        #expect(try ChunkFile.read(path) == small)  // no tail of the bigger file left behind
        #expect(Self.listing(directory) == ["f3-2019-03-01.chunk"])  // no temporary file left
        try ChunkFile.write([], to: path)
        #expect(try ChunkFile.read(path) == [])
    }

    @Test func failedWriteLeavesNoTemporaryFileAndKeepsTheOld() throws {
        let directory = try Self.temporaryDirectory()
        defer {
            for name in Self.listing(directory) {
                let path = "\(directory)/\(name)"
                rmdir(path)
                unlink(path)
            }
            rmdir(directory)
        }
        // Renaming a file over a non-empty directory fails after the data was written.
        let target = "\(directory)/occupied"
        mkdir(target, 0o755)
        mkdir("\(target)/inner", 0o755)
        let error = #expect(throws: ChunkError.self) { try ChunkFile.write([1, 2, 3], to: target) }
        #expect(error?.code == .io)
        #expect(Self.listing(directory) == ["occupied"])
    }

    @Test func readingAMissingFileSaysSo() {
        let error = #expect(throws: ChunkError.self) { _ = try ChunkFile.read("/nonexistent/bems/x.chunk") }
        #expect(error?.code == .fileNotFound)
    }
}
