import Testing

@testable import BEMSCore

@Suite struct WideRowParserTests {
    /// Parses `line` (floor 1 layout unless a header is given).
    func parse(
        _ line: String, terminated: Bool = true, header: String = CSV.header(floor: 1), floor: Int = 1,
        config: PipelineConfig = PipelineConfig()
    ) throws -> ParsedRow {
        let layout = try Array(header.utf8).withUnsafeBytes { try FileLayout(header: $0, floor: floor) }
        var parser = try WideRowParser(layout: layout, config: config)
        var row = ParsedRow()
        Array(line.utf8).withUnsafeBytes { raw in
            parser.parse(Line(bytes: raw, number: 7, terminated: terminated, overlongLength: nil), into: &row)
        }
        return row
    }

    static let good = "2018-09-11 09:54:00,12.94,18.56,45.24,0.01,0.01,0,13.76,17.64,4762.43,0.89,1"

    @Test func parsesARealRowExactly() throws {
        let row = try parse(Self.good)
        #expect(row.rowError == nil)
        #expect(row.readings == 11)
        #expect(row.values == [129_400, 185_600, 452_400, 100, 100, 0, 137_600, 176_400, 47_624_300, 8_900, 10_000])
        #expect(row.kinds[8] == .anomaly)  // the real 4762.43 kW light spike is kept as an anomaly
        #expect(row.kinds.filter { $0 == .normal }.count == 10)
        #expect(row.localTime == (try TimestampParser.parse("2018-09-11 09:54:00")))
        #expect(row.utcTime == row.localTime - 25_200)
    }

    @Test func emptyAndNaNCellsAreMissingNotErrors() throws {
        let row = try parse("2019-01-01 00:00:00,,0.58,NaN,nan,,,,,,,")
        #expect(row.rowError == nil)
        #expect(row.readings == 1)
        #expect(row.missing == 10)
        #expect(row.nanCells == 2)
        #expect(row.cellErrors.isEmpty)
    }

    @Test func allEmptyRow() throws {
        let row = try parse("2019-01-01 00:00:00,,,,,,,,,,,")
        #expect(row.readings == 0)
        #expect(row.missing == 11)
    }

    @Test func quotedFieldsAreUnquoted() throws {
        let row = try parse("\"2019-01-01 00:00:00\",\"1.5\",,,,,,,,,,")
        #expect(row.rowError == nil)
        #expect(row.values[0] == 15_000)
    }

    @Test(
        arguments: [
            ("2019-01-01 00:00:00,1,2", RejectCode.fieldCount, 24),
            ("2019-01-01 00:00:00,1,2,3,4,5,6,7,8,9,10,11,12", .fieldCount, 47),
            ("2019-02-30 00:00:00,1,2,3,4,5,6,7,8,9,10,11", .badTimestamp, 9),
            ("2019-01-01,1,2,3,4,5,6,7,8,9,10,11", .badTimestamp, 1),
            ("\"2019-01-01 00:00:00,1,2,3,4,5,6,7,8,9,10,11", .badQuote, 1),
            ("\"2019-01-01 00:00:00\"x,1,2,3,4,5,6,7,8,9,10,11", .badQuote, 22),
        ] as [(String, RejectCode, Int)])
    func wholeRowRejections(line: String, code: RejectCode, column: Int) throws {
        let row = try parse(line)
        #expect(row.rowError?.code == code)
        #expect(row.rowError?.column == column)
    }

    @Test func theTruncatedLastLineOf2019Floor6() throws {
        let row = try parse("2", terminated: false, header: CSV.header(floor: 6), floor: 6)
        #expect(row.rowError?.code == .truncatedLine)
        #expect(row.rowError?.message.contains("cut off") == true)
        // The same short line in the middle of a file is a plain field-count error.
        #expect(try parse("2", terminated: true, header: CSV.header(floor: 6), floor: 6).rowError?.code == .fieldCount)
    }

    @Test(
        arguments: [
            ("abc", RejectCode.badNumber, 23), ("-0.01", .outOfRange, 23), ("1.23456", .tooManyDecimals, 29),
            ("1e3", .badNumber, 24), ("1000000", .outOfRange, 29), ("1\u{0}", .nulByte, 24),
            ("Infinity", .badNumber, 23),
            ("1\"", .badQuote, 24),
        ] as [(String, RejectCode, Int)])
    func badCellsAreRejectedAloneAndTheRestOfTheRowIsKept(cell: String, code: RejectCode, column: Int) throws {
        let row = try parse("2019-01-01 00:00:00,1,\(cell),3,,,,,,,,")
        #expect(row.rowError == nil)
        #expect(row.cellErrors.count == 1)
        #expect(row.cellErrors[0].code == code)
        #expect(row.cellErrors[0].column == column)
        #expect(row.cellErrors[0].sensorID == "f1_z1_plug")
        #expect(row.kinds[1] == .rejected)
        #expect(row.readings == 2)
        #expect(row.values[0] == 10_000)
        #expect(row.values[2] == 30_000)
    }

    @Test func humidityOver100IsRejectedAndRangesComeFromTheConfig() throws {
        let header = CSV.header(floor: 2)
        let cells = (0..<36).map { $0 == 4 ? "100.01" : "" }.joined(separator: ",")
        let row = try parse("2019-06-01 12:00:00," + cells, header: header, floor: 2)
        #expect(row.cellErrors.first?.code == .outOfRange)
        #expect(row.cellErrors.first?.sensorID == "f2_z1_s1_rh")
        var config = PipelineConfig()
        config.ranges[.humidity]!.valid = 0...2_000_000
        let relaxed = try parse("2019-06-01 12:00:00," + cells, header: header, floor: 2, config: config)
        #expect(relaxed.cellErrors.isEmpty)
        #expect(relaxed.kinds[4] == .anomaly)
    }

    @Test func overlongLinesAreRejectedWhole() throws {
        let layout = try Array(CSV.header(floor: 1).utf8).withUnsafeBytes { try FileLayout(header: $0, floor: 1) }
        var parser = try WideRowParser(layout: layout, config: PipelineConfig())
        var row = ParsedRow()
        [UInt8](repeating: 0x31, count: 10).withUnsafeBytes { raw in
            parser.parse(Line(bytes: raw, number: 3, terminated: true, overlongLength: 10_000_000), into: &row)
        }
        #expect(row.rowError?.code == .lineTooLong)
    }

    @Test func theFastAndTheGeneralNumberPathsAgree() throws {
        var rng = SampleRandom(seed: 11)
        let pieces = ["0", "00", "1", "12", "123456", "1234567", "0000012", "-", "", ".", "5", "99", "1000000"]
        let fractions = ["", ".", ".0", ".5", ".25", ".1234", ".12345", ".10000", ".00001", ".9999"]
        for _ in 0..<3000 {
            let cells = (0..<11).map { _ in
                pieces[Int(rng.next() % UInt64(pieces.count))] + fractions[Int(rng.next() % UInt64(fractions.count))]
            }
            let row = try parse("2019-01-01 00:00:00," + cells.joined(separator: ","))
            #expect(row.rowError == nil)
            for (c, cell) in cells.enumerated() {
                if cell.isEmpty {
                    #expect(row.kinds[c] == .missing)
                    continue
                }
                let expected = try? DecimalParser.parse(cell)
                if let expected, expected >= 0 {
                    #expect(row.kinds[c] != .rejected && row.kinds[c] != .missing, "\(cell)")
                    #expect(row.values[c] == expected, "\(cell)")
                } else {
                    #expect(row.kinds[c] == .rejected, "\(cell)")
                }
            }
        }
    }
}
