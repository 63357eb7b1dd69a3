import Testing

@testable import BEMSCore

// MARK: - Helpers

/// A generated file split into header and rows of cells, kept as byte slices so the checks stay fast in debug builds.
private struct ParsedFile {
    /// One line's cells.
    struct Row: RandomAccessCollection {
        let bytes: [UInt8]
        let bounds: ArraySlice<Int>
        var startIndex: Int { 0 }
        var endIndex: Int { bounds.count / 2 }
        subscript(position: Int) -> ArraySlice<UInt8> {
            let i = bounds.startIndex + position * 2
            return bytes[bounds[i]..<bounds[i + 1]]
        }
    }

    let name: String
    let header: [String]
    let rows: [Row]

    init(name: String, bytes: [UInt8]) {
        self.name = name
        var bounds: [Int] = []
        var rowRanges: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { b in
            var i = b.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
            while i < b.count {
                let first = bounds.count
                var cellStart = i
                while true {
                    if i == b.count || b[i] == 0x0A {
                        var cellEnd = i
                        if cellEnd > cellStart && b[cellEnd - 1] == 0x0D { cellEnd -= 1 }
                        bounds += [cellStart, cellEnd]
                        i += 1
                        break
                    }
                    if b[i] == UInt8(ascii: ",") {
                        bounds += [cellStart, i]
                        cellStart = i + 1
                    }
                    i += 1
                }
                rowRanges.append(first..<bounds.count)
            }
        }
        let all = rowRanges.map { Row(bytes: bytes, bounds: bounds[$0]) }
        header = all.first.map { $0.map(text) } ?? []
        rows = Array(all.dropFirst())
    }

    /// Column indices (into a row, `Date` is 0) whose header matches.
    func columns(where predicate: (String) -> Bool) -> [Int] {
        header.indices.filter { $0 > 0 && predicate(header[$0]) }
    }
}

private func text(_ cell: ArraySlice<UInt8>) -> String { String(decoding: cell, as: UTF8.self) }

private func render(
    start: String,
    days: Int,
    floors: [Int],
    seed: UInt64 = 42,
    lineEnding: SampleConfiguration.LineEnding = .lf,
    bom: Bool = false,
    truncate: Bool = false,
    floor6LastMinute: Int? = nil
) throws -> [(summary: SampleFileSummary, bytes: [UInt8])] {
    let configuration = SampleConfiguration(
        start: try #require(CivilDate(parsing: start)),
        days: days,
        floors: floors,
        seed: seed,
        lineEnding: lineEnding,
        byteOrderMark: bom,
        truncateFloor6: truncate,
        floor6LastMinute: floor6LastMinute
    )
    return try SampleGenerator(configuration: configuration).render()
}

private func parsed(_ files: [(summary: SampleFileSummary, bytes: [UInt8])]) -> [ParsedFile] {
    files.map { ParsedFile(name: $0.summary.name, bytes: $0.bytes) }
}

/// Minutes since 1970-01-01 for `YYYY-MM-DD HH:MM:SS`, parsed independently of the generator's writer.
private func minuteNumber(_ cell: ArraySlice<UInt8>) -> Int? {
    let b = Array(cell)
    guard b.count == 19, b[10] == UInt8(ascii: " "), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
        b[17] == UInt8(ascii: "0"), b[18] == UInt8(ascii: "0"),
        let date = CivilDate(parsing: String(decoding: b[0..<10], as: UTF8.self)),
        let h = Int(String(decoding: b[11..<13], as: UTF8.self)),
        let m = Int(String(decoding: b[14..<16], as: UTF8.self)),
        (0..<24).contains(h), (0..<60).contains(m)
    else { return nil }
    return date.dayNumber * 1440 + h * 60 + m
}

/// Hundredths for a decimal cell; `nil` for anything that is not a plain non-negative or negative decimal.
private func hundredths(_ cell: ArraySlice<UInt8>) -> Int64? {
    var negative = false
    var whole: Int64 = 0
    var fraction: Int64 = 0
    var fractionDigits = 0
    var seenPoint = false
    var digits = 0
    for (i, byte) in cell.enumerated() {
        if i == 0 && byte == UInt8(ascii: "-") {
            negative = true
        } else if byte == UInt8(ascii: ".") && !seenPoint {
            seenPoint = true
        } else if byte >= 48 && byte <= 57 {
            if seenPoint {
                fractionDigits += 1
                guard fractionDigits <= 2 else { return nil }
                fraction = fraction * 10 + Int64(byte - 48)
            } else {
                whole = whole * 10 + Int64(byte - 48)
                digits += 1
            }
        } else {
            return nil
        }
    }
    guard digits > 0, !(seenPoint && fractionDigits == 0) else { return nil }
    if fractionDigits == 1 { fraction *= 10 }
    let value = whole * 100 + fraction
    return negative ? -value : value
}

private func isPower(_ name: String) -> Bool { name.hasSuffix("(kW)") }
private func isS1(_ name: String) -> Bool { name.contains("_S1(") }

// MARK: - Structure

@Suite struct GeneratorStructureTests {
    @Test(arguments: Array(FloorSchema.floors))
    func headerEqualsFloorSchema(floor: Int) throws {
        let files = try parsed(render(start: "2019-03-04", days: 1, floors: [floor]))
        let file = try #require(files.first)
        #expect(files.count == 1)
        #expect(file.name == "2019Floor\(floor).csv")
        #expect(file.header == FloorSchema.header(floor: floor))
        for row in file.rows { #expect(row.count == file.header.count) }
    }

    @Test func rowCountIsDaysTimes1440AndTimestampsStepOneMinute() throws {
        let files = try render(start: "2019-03-04", days: 3, floors: [1, 2, 6])
        for (summary, bytes) in files {
            let file = ParsedFile(name: summary.name, bytes: bytes)
            #expect(file.rows.count == 3 * 1440)
            #expect(summary.rows == 3 * 1440)
            #expect(summary.bytes == bytes.count)
            #expect(file.rows.first.map { text($0[0]) } == "2019-03-04 00:00:00")
            #expect(file.rows.last.map { text($0[0]) } == "2019-03-06 23:59:00")
            var previous: Int?
            for row in file.rows {
                let minute = try #require(minuteNumber(row[0]), "bad timestamp \(text(row[0]))")
                if let previous { #expect(minute == previous + 1) }
                previous = minute
            }
        }
    }

    @Test func periodAcrossNewYearIsSplitIntoYearFiles() throws {
        let files = try parsed(render(start: "2018-12-31", days: 2, floors: [3, 2]))
        #expect(files.map(\.name) == ["2018Floor3.csv", "2019Floor3.csv", "2018Floor2.csv", "2019Floor2.csv"])
        for file in files {
            #expect(file.rows.count == 1440)
            #expect(file.header == FloorSchema.header(floor: file.name.hasSuffix("2.csv") ? 2 : 3))
        }
        #expect(files[0].rows.first.map { text($0[0]) } == "2018-12-31 00:00:00")
        #expect(files[0].rows.last.map { text($0[0]) } == "2018-12-31 23:59:00")
        #expect(files[1].rows.first.map { text($0[0]) } == "2019-01-01 00:00:00")
        #expect(files[1].rows.last.map { text($0[0]) } == "2019-01-01 23:59:00")
    }

    @Test func writesFilesToDirectory() throws {
        let directory = "/tmp/bems-generator-test-\(UInt64.random(in: 0...UInt64.max))/nested/out"
        let configuration = SampleConfiguration(
            start: CivilDate(year: 2019, month: 5, day: 1)!,
            days: 1,
            floors: [1, 7]
        )
        let summary = try SampleGenerator(configuration: configuration).write(toDirectory: directory)
        let inMemory = try SampleGenerator(configuration: configuration).render()
        #expect(summary.files == inMemory.map(\.summary))
        #expect(summary.rows == 2 * 1440)
        #expect(summary.bytes == inMemory.reduce(0) { $0 + $1.bytes.count })
    }

    @Test func invalidConfigurationsAreRejected() {
        let start = SampleConfiguration.defaultStart
        for configuration in [
            SampleConfiguration(start: start, days: 0), SampleConfiguration(start: start, floors: [8]),
            SampleConfiguration(start: start, floors: []), SampleConfiguration(start: start, floors: [2, 2]),
        ] {
            #expect(throws: SampleGeneratorError.self) { try SampleGenerator(configuration: configuration).render() }
        }
    }
}

// MARK: - Determinism and options

@Suite struct GeneratorOptionTests {
    @Test func sameSeedGivesSameBytesAndOtherSeedDiffers() throws {
        let a = try render(start: "2019-06-10", days: 2, floors: [2, 5])
        let b = try render(start: "2019-06-10", days: 2, floors: [2, 5])
        let c = try render(start: "2019-06-10", days: 2, floors: [2, 5], seed: 43)
        #expect(a.map(\.bytes) == b.map(\.bytes))
        #expect(a[0].bytes != c[0].bytes)
        #expect(a[1].bytes != c[1].bytes)
    }

    @Test func floorContentDoesNotDependOnOtherFloorsSelected() throws {
        let alone = try render(start: "2019-06-10", days: 1, floors: [5])
        let together = try render(start: "2019-06-10", days: 1, floors: [1, 5])
        #expect(alone[0].bytes == together[1].bytes)
    }

    @Test func crlfEndsEveryLine() throws {
        for (_, bytes) in try render(start: "2019-03-04", days: 1, floors: [1, 6], lineEnding: .crlf) {
            var lines = 0
            for i in bytes.indices where bytes[i] == 0x0A {
                #expect(i > 0 && bytes[i - 1] == 0x0D)
                lines += 1
            }
            #expect(lines == 1441)
            #expect(bytes.suffix(2) == [0x0D, 0x0A])
        }
        for (_, bytes) in try render(start: "2019-03-04", days: 1, floors: [1]) {
            #expect(!bytes.contains(0x0D))
        }
    }

    @Test func bomStartsEveryFile() throws {
        for (_, bytes) in try render(start: "2019-03-04", days: 1, floors: [1, 2], bom: true) {
            #expect(Array(bytes.prefix(8)) == [0xEF, 0xBB, 0xBF] + Array("Date,".utf8))
        }
        for (_, bytes) in try render(start: "2019-03-04", days: 1, floors: [1]) {
            #expect(Array(bytes.prefix(5)) == Array("Date,".utf8))
        }
    }

    @Test(arguments: [SampleConfiguration.LineEnding.lf, .crlf])
    func truncatedFloor6EndsWithJunkLine2(lineEnding: SampleConfiguration.LineEnding) throws {
        let files = try render(start: "2019-03-04", days: 1, floors: [5, 6], lineEnding: lineEnding, truncate: true)
        let floor6 = try #require(files.first { $0.summary.name == "2019Floor6.csv" })
        let eol = lineEnding.bytes
        #expect(floor6.bytes.last == UInt8(ascii: "2"))
        let lastLineStart = floor6.bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        #expect(Array(floor6.bytes[lastLineStart...]) == [UInt8(ascii: "2")])
        #expect(floor6.summary.rows == 1441)
        let file = ParsedFile(name: floor6.summary.name, bytes: floor6.bytes)
        #expect(file.rows.last.map { $0.count == 1 && text($0[0]) == "2" } == true)
        #expect(text(file.rows[file.rows.count - 2][0]) == "2019-03-04 23:59:00")
        let floor5 = try #require(files.first { $0.summary.name == "2019Floor5.csv" })
        #expect(floor5.bytes.suffix(eol.count) == eol[...])
        #expect(floor5.summary.rows == 1440)
    }

    @Test func truncationOnlyTouchesThe2019File() throws {
        let files = try render(start: "2018-12-31", days: 2, floors: [6], truncate: true)
        #expect(files[0].summary.rows == 1440)
        #expect(files[0].bytes.last == 0x0A)
        #expect(files[1].summary.rows == 1441)
        #expect(files[1].bytes.last == UInt8(ascii: "2"))
    }

    @Test func fullShapeStopsFloor6At13_27() throws {
        let full = SampleConfiguration.full()
        #expect(full.start == CivilDate(year: 2018, month: 7, day: 1))
        #expect(full.days == 184 + 365)
        #expect(full.floors == Array(1...7))
        #expect(full.truncateFloor6)
        let files = try render(
            start: "2019-10-22",
            days: 2,
            floors: [6, 7],
            truncate: true,
            floor6LastMinute: full.floor6LastMinute
        )
        let floor6 = ParsedFile(name: files[0].summary.name, bytes: files[0].bytes)
        #expect(floor6.rows.count == 13 * 60 + 28 + 1)
        #expect(text(floor6.rows[floor6.rows.count - 2][0]) == "2019-10-22 13:27:00")
        #expect(floor6.rows.last.map { $0.count == 1 && text($0[0]) == "2" } == true)
        #expect(files[1].summary.rows == 2 * 1440)
        // 424,168 valid minutes from 2019-01-01 00:00 through 2019-10-22 13:27, as in the real file.
        let first2019 = CivilDate(year: 2019, month: 1, day: 1)!.dayNumber * 1440
        #expect(try #require(full.floor6LastMinute) - first2019 + 1 == 424_168)
    }
}

// MARK: - Realism

@Suite struct GeneratorRealismTests {
    @Test func valuesStayInPhysicalRanges() throws {
        for file in try parsed(render(start: "2019-03-04", days: 5, floors: Array(1...7))) {
            let power = file.columns(where: isPower)
            let rh = file.columns { $0.hasSuffix("(RH%)") }
            let lux = file.columns { $0.hasSuffix("(lux)") }
            let temperature = file.columns { $0.hasSuffix("(degC)") }
            for row in file.rows {
                for c in power where !row[c].isEmpty {
                    let v = try #require(hundredths(row[c]), "\(file.name) \(text(row[0])) \(text(row[c]))")
                    #expect(v >= 0)
                }
                for c in rh where !row[c].isEmpty {
                    let v = try #require(hundredths(row[c]))
                    #expect(v >= 0 && v <= 10_000)
                }
                for c in lux where !row[c].isEmpty {
                    let v = try #require(hundredths(row[c]))
                    #expect(v % 100 == 0 && v >= 0 && v <= 9_200, "lux \(text(row[c]))")
                }
                for c in temperature where !row[c].isEmpty {
                    let v = try #require(hundredths(row[c]))
                    #expect(v > 500 && v < 4_000)
                }
            }
        }
    }

    @Test func numbersUseShortestFormWithBothZeroForms() throws {
        #expect(SampleNumberFormat.string(0, wholeAsInteger: true) == "0")
        #expect(SampleNumberFormat.string(0, wholeAsInteger: false) == "0.0")
        #expect(SampleNumberFormat.string(31, wholeAsInteger: false) == "0.31")
        #expect(SampleNumberFormat.string(2836, wholeAsInteger: true) == "28.36")
        #expect(SampleNumberFormat.string(6250, wholeAsInteger: true) == "62.5")
        #expect(SampleNumberFormat.string(476_243, wholeAsInteger: true) == "4762.43")
        #expect(SampleNumberFormat.string(4500, wholeAsInteger: false) == "45.0")
        #expect(SampleNumberFormat.string(-1, wholeAsInteger: true) == "-0.01")
        var cells: [String: Int] = [:]
        for file in try parsed(render(start: "2019-03-04", days: 1, floors: Array(1...7))) {
            for row in file.rows { for cell in row.dropFirst() { cells[text(cell), default: 0] += 1 } }
        }
        #expect(cells["0", default: 0] > 0)
        #expect(cells["0.0", default: 0] > 0)
        #expect(cells.keys.allSatisfy { !$0.hasSuffix("0") || !$0.contains(".") || $0.hasSuffix(".0") })
        #expect(cells.keys.allSatisfy { !$0.hasSuffix(".00") })
    }

    @Test func s1IsEmptyDuringTheMaintenanceGap() throws {
        for start in ["2018-09-15", "2018-12-30", "2019-03-04"] {
            let days = start == "2019-03-04" ? 2 : 3
            for file in try parsed(render(start: start, days: days, floors: Array(2...7))) {
                let s1 = file.columns(where: isS1)
                #expect(s1.count >= 12)
                for row in file.rows { for c in s1 { #expect(row[c].isEmpty) } }
            }
        }
        // Back from 2019-03-06: most S1 cells of the following week hold values.
        for file in try parsed(render(start: "2019-03-07", days: 7, floors: [2, 4])) {
            let s1 = file.columns(where: isS1)
            let present = file.rows.reduce(0) { sum, row in sum + s1.filter { !row[$0].isEmpty }.count }
            #expect(present * 10 > file.rows.count * s1.count * 7)
        }
    }

    @Test func floor2Quirks() throws {
        let y2018 = try #require(parsed(render(start: "2018-07-02", days: 2, floors: [2])).first)
        let z4 = y2018.columns { $0.hasPrefix("z4_S1") }
        #expect(z4.count == 3)
        for row in y2018.rows { for c in z4 { #expect(row[c].isEmpty) } }
        let otherS1 = y2018.columns { isS1($0) && !$0.hasPrefix("z4") }
        #expect(y2018.rows.contains { row in otherS1.contains { !row[$0].isEmpty } })

        let y2019 = try #require(parsed(render(start: "2019-05-01", days: 3, floors: [2])).first)
        let ac11 = try #require(y2019.columns { $0 == "z2_AC11(kW)" }.first)
        #expect(y2019.rows.allSatisfy { text($0[ac11]) == "0.0" || $0[ac11].isEmpty })
    }

    @Test func emptyShareIsPlausible() throws {
        // 2019 after the maintenance gap: a few percent; 2018 before it: more.
        for (start, band) in [("2019-04-01", 0.002...0.15), ("2018-07-02", 0.02...0.35)] {
            var empty = 0
            var cells = 0
            for file in try parsed(render(start: start, days: 7, floors: [1, 2, 4, 6])) {
                for row in file.rows {
                    cells += row.count - 1
                    empty += row.dropFirst().filter(\.isEmpty).count
                }
            }
            let share = Double(empty) / Double(cells)
            #expect(band.contains(share), "\(start): empty share \(share)")
        }
    }

    @Test func missingCellsComeInRuns() throws {
        let file = try #require(parsed(render(start: "2018-07-02", days: 14, floors: [3])).first)
        var runs = 0
        var missing = 0
        for c in file.columns(where: isPower) {
            var previous = false
            for row in file.rows {
                let empty = row[c].isEmpty
                if empty { missing += 1 }
                if empty && !previous { runs += 1 }
                previous = empty
            }
        }
        #expect(missing > 0)
        // Independent coin flips at this rate would give runs ≈ missing; dropouts last minutes to hours.
        #expect(runs * 10 < missing)
    }

    @Test func allEmptyRowsOccurOverAFewWeeks() throws {
        let file = try #require(parsed(render(start: "2019-04-01", days: 42, floors: [1])).first)
        let allEmpty = file.rows.filter { $0.dropFirst().allSatisfy(\.isEmpty) }.count
        #expect(allEmpty > 0)
        #expect(allEmpty < 42 * 1440 / 100)
    }

    @Test func spikesAppearOverAMonth() throws {
        let files = try parsed(render(start: "2019-05-01", days: 30, floors: [1, 3]))
        for file in files {
            let power = file.columns(where: isPower)
            let spikes = file.rows.filter { row in power.contains { (hundredths(row[$0]) ?? 0) >= 10_000 } }.count
            #expect(spikes >= 1, "\(file.name)")
            #expect(spikes <= 10, "\(file.name)")
        }
    }

    @Test func knownRealSpikeIsReproduced() throws {
        let file = try #require(parsed(render(start: "2018-09-11", days: 1, floors: [1])).first)
        let column = try #require(file.columns { $0 == "z3_Light(kW)" }.first)
        let row = try #require(file.rows.first { text($0[0]) == "2018-09-11 09:54:00" })
        #expect(text(row[column]) == "4762.43")
    }

    @Test func filesStartingAtTheRealFirstMinuteOpenWithTheRealReadings() throws {
        let y2018 = try #require(parsed(render(start: "2018-07-01", days: 1, floors: [1])).first)
        let first2018 = try #require(y2018.rows.first)
        #expect(text(first2018[0]) == "2018-07-01 00:00:00")
        #expect(first2018[1...10].map { hundredths($0) } == [1294, 1856, 4524, 1, 1, 0, 1376, 1764, 1092, 89])
        let y2019 = try #require(parsed(render(start: "2018-12-31", days: 2, floors: [2])).last)
        let first2019 = try #require(y2019.rows.first)
        #expect(text(first2019[0]) == "2019-01-01 00:00:00")
        #expect(first2019[1...3].map { hundredths($0) } == [0, 31, 9])
        #expect(first2019[4...6].allSatisfy { $0.isEmpty })
        #expect(first2019[7...10].map { hundredths($0) } == [0, 115, 85, 91])
    }

    @Test func temperatureDriftsSlowly() throws {
        let file = try #require(parsed(render(start: "2019-04-02", days: 3, floors: [4])).first)
        var steps = 0
        var small = 0
        for c in file.columns(where: { $0.hasSuffix("(degC)") }) {
            var previous: Int64?
            for row in file.rows {
                guard let v = hundredths(row[c]) else {
                    previous = nil
                    continue
                }
                if let p = previous {
                    steps += 1
                    if abs(v - p) <= 5 { small += 1 }
                }
                previous = v
            }
        }
        #expect(steps > 1000)
        #expect(small * 100 >= steps * 99)
    }

    @Test func officeLoadsFollowTheWorkingDay() throws {
        // Monday 2019-04-01: floor 3 lights are off or standby at 03:00 and on at 10:00.
        let file = try #require(parsed(render(start: "2019-04-01", days: 1, floors: [3])).first)
        let lights = file.columns { $0.hasSuffix("_Light(kW)") }
        func total(_ time: String) -> Int64 {
            let row = file.rows.first { text($0[0]) == "2019-04-01 \(time)" }!
            return lights.reduce(0) { $0 + (hundredths(row[$1]) ?? 0) }
        }
        #expect(total("03:00:00") <= 20)
        #expect(total("10:00:00") >= 200)
    }
}

@Suite struct CivilDateTests {
    @Test func roundTripsAndWeekdays() throws {
        let date = try #require(CivilDate(parsing: "2019-03-04"))
        #expect(date.weekday == 1)
        #expect(CivilDate(dayNumber: date.dayNumber) == date)
        #expect(CivilDate(dayNumber: 0) == CivilDate(year: 1970, month: 1, day: 1))
        #expect(CivilDate(parsing: "2019-02-29") == nil)
        #expect(CivilDate(parsing: "2020-02-29")?.description == "2020-02-29")
        #expect(CivilDate(parsing: "2019-3-04") == nil)
    }
}
