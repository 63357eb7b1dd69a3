import Testing

@testable import BEMSCore

@Suite struct BinaryCopyEncoderTests {
    // MARK: - Framing

    @Test func headerIsSignatureFlagsAndExtensionLength() {
        var encoder = BinaryCopyEncoder()
        encoder.appendHeader()
        #expect(
            encoder.bytes == [
                0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00,  // PGCOPY\n\377\r\n\0
                0, 0, 0, 0,  // flags
                0, 0, 0, 0,  // header extension length
            ]
        )
    }

    @Test func trailerIsMinusOneInt16() {
        var encoder = BinaryCopyEncoder()
        encoder.appendTrailer()
        #expect(encoder.bytes == [0xFF, 0xFF])
    }

    @Test func tupleWithIntegersAndNullIsBigEndian() {
        var encoder = BinaryCopyEncoder()
        encoder.appendTupleHeader(fieldCount: 4)
        encoder.appendInt32(0x0102_0304)
        encoder.appendInt64(-2)
        encoder.appendNull()
        encoder.appendInt16(-3)
        #expect(
            encoder.bytes == [
                0x00, 0x04,
                0x00, 0x00, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04,
                0x00, 0x00, 0x00, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
                0xFF, 0xFF, 0xFF, 0xFF,
                0x00, 0x00, 0x00, 0x02, 0xFF, 0xFD,
            ]
        )
    }

    @Test func textIsLengthPrefixedUTF8() {
        var encoder = BinaryCopyEncoder()
        encoder.appendText("kW°")
        #expect(encoder.bytes == [0, 0, 0, 4, 0x6B, 0x57, 0xC2, 0xB0])
        var other = BinaryCopyEncoder()
        other.append(.text("kW°"))
        #expect(other.bytes == encoder.bytes)
        var empty = BinaryCopyEncoder()
        empty.appendText("")
        #expect(empty.bytes == [0, 0, 0, 0])
    }

    // MARK: - timestamptz

    @Test(arguments: [
        // (Unix seconds, microseconds since 2000-01-01 UTC)
        (Int64(946_684_800), Int64(0)),
        (Int64(946_684_799), Int64(-1_000_000)),
        (Int64(0), Int64(-946_684_800_000_000)),
        (Int64(-1), Int64(-946_684_801_000_000)),
        (Int64(1_546_304_400), Int64(599_619_600_000_000)),  // 2019-01-01 08:00 Bangkok
    ])
    func timestamptzIsMicrosecondsSincePostgresEpoch(unixSeconds: Int64, expected: Int64) {
        var encoder = BinaryCopyEncoder()
        encoder.appendTimestamptz(unixSeconds: unixSeconds)
        #expect(encoder.bytes == [0, 0, 0, 8] + bigEndian(expected))
        var micro = BinaryCopyEncoder()
        micro.appendTimestamptz(unixMicroseconds: unixSeconds * 1_000_000)
        #expect(micro.bytes == encoder.bytes)
    }

    // MARK: - NUMERIC

    /// (scaled value, ndigits, weight, sign, digits)
    static let numericCases: [(Int64, Int16, Int16, UInt16, [Int16])] = [
        (0, 0, 0, 0x0000, []),
        (1, 1, -1, 0x0000, [1]),  // 0.0001
        (-1, 1, -1, 0x4000, [1]),  // -0.0001
        (10_000, 1, 0, 0x0000, [1]),  // 1
        (-10_000, 1, 0, 0x4000, [1]),  // -1
        (99_999_999, 2, 0, 0x0000, [9999, 9999]),  // 9999.9999
        (-99_999_999, 2, 0, 0x4000, [9999, 9999]),
        (100_000_000, 1, 1, 0x0000, [1]),  // 10000: trailing zero groups stripped
        (-100_000_000, 1, 1, 0x4000, [1]),
        (9_999_999_999, 3, 1, 0x0000, [99, 9999, 9999]),  // 999999.9999
        (-9_999_999_999, 3, 1, 0x4000, [99, 9999, 9999]),
        (47_624_300, 2, 0, 0x0000, [4762, 4300]),  // 4762.43
        (1_234_500, 2, 0, 0x0000, [123, 4500]),  // 123.4500
        (5_000, 1, -1, 0x0000, [5000]),  // 0.5
        (1_000_000_010_000, 3, 2, 0x0000, [1, 0, 1]),  // 100000001: inner zero group kept
        (10_000_000_000_000, 1, 2, 0x0000, [10]),  // 1000000000
        (Int64.max, 5, 3, 0x0000, [922, 3372, 368, 5477, 5807]),  // 922337203685477.5807
        (Int64.min, 5, 3, 0x4000, [922, 3372, 368, 5477, 5808]),
    ]

    @Test(arguments: numericCases)
    func numericIsCanonicalBase10000(_ c: (Int64, Int16, Int16, UInt16, [Int16])) {
        let (scaled, ndigits, weight, sign, digits) = c
        var encoder = BinaryCopyEncoder()
        encoder.appendNumeric(scaled: scaled)
        var expected = bigEndian(Int32(8 + 2 * digits.count))
        expected += bigEndian(ndigits) + bigEndian(weight) + bigEndian(Int16(bitPattern: sign)) + bigEndian(Int16(4))
        for d in digits { expected += bigEndian(d) }
        #expect(encoder.bytes == expected)
    }

    // MARK: - Rows and buffering

    @Test func readingRowHasSevenFieldsInColumnOrder() throws {
        let sensor = try #require(SensorFields(sensorID: "f3_z1_ac4"))
        var encoder = BinaryCopyEncoder()
        encoder.appendReading(unixSeconds: 946_684_800, value: 10_000, status: .anomaly, sensor: sensor)
        var expected: [UInt8] = [0, 7]
        expected += [0, 0, 0, 8] + bigEndian(Int64(0))
        expected += [0, 0, 0, 9] + Array("f3_z1_ac4".utf8)
        expected += [0, 0, 0, 4, 0, 0, 0, 3]
        expected += [0, 0, 0, 2] + Array("ac".utf8)
        expected += [0, 0, 0, 10, 0, 1, 0, 0, 0, 0, 0, 4, 0, 1]
        expected += [0, 0, 0, 2] + Array("kW".utf8)
        expected += [0, 0, 0, 7] + Array("anomaly".utf8)
        #expect(encoder.bytes == expected)
        #expect(BinaryCopyEncoder.readingColumns.count == 7)
    }

    @Test func nullReadingValueIsEncodedAsNull() throws {
        let sensor = try #require(SensorFields(sensorID: "f1_z2_s1_lux"))
        var encoder = BinaryCopyEncoder()
        encoder.appendReading(unixSeconds: 946_684_800, value: nil, status: .normal, sensor: sensor)
        let bytes = encoder.bytes
        // tuple header 2 + timestamp 12 + sensor_id 4+12 + floor 8 + equipment 4+11, then the value field.
        let valueOffset = 2 + 12 + 16 + 8 + 15
        #expect(Array(bytes[valueOffset..<(valueOffset + 4)]) == [0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func unknownSensorIDHasNoFields() {
        #expect(SensorFields(sensorID: "nonsense") == nil)
    }

    @Test func bufferGrowsPastItsInitialCapacityAndKeepsBytes() {
        var encoder = BinaryCopyEncoder(flushThreshold: 16)
        for i in 0..<10_000 { encoder.appendInt32(Int32(i)) }
        #expect(encoder.count == 80_000)
        let bytes = encoder.bytes
        #expect(Array(bytes[(79_992)...]) == [0, 0, 0, 4] + bigEndian(Int32(9_999)))
        encoder.removeAll()
        #expect(encoder.count == 0)
        #expect(encoder.bytes.isEmpty)
    }

    @Test func copyReadingsSQLNamesColumnsInOrder() {
        #expect(
            BinaryCopyEncoder.copyReadingsSQL(table: "staging")
                == "COPY staging (\"timestamp\", \"sensor_id\", \"floor_number\", \"equipment_type\", \"reading_value\","
                + " \"unit\", \"status\") FROM STDIN (FORMAT binary)"
        )
    }

    private func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

@Suite struct ReadingWithIDTests {
    @Test func readingRowWithIDHasEightFieldsIDFirst() throws {
        let sensor = try #require(SensorFields(sensorID: "f3_z1_ac4"))
        var withID = BinaryCopyEncoder()
        withID.appendReading(
            id: 0x0102_0304_0506_0708, unixSeconds: 946_684_800, value: 10_000, status: .anomaly, sensor: sensor)
        var plain = BinaryCopyEncoder()
        plain.appendReading(unixSeconds: 946_684_800, value: 10_000, status: .anomaly, sensor: sensor)
        let expected: [UInt8] = [0, 8] + [0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8] + Array(plain.bytes.dropFirst(2))
        #expect(withID.bytes == expected)
        #expect(
            BinaryCopyEncoder.copyReadingsWithIDSQL(table: "sensor_readings")
                == "COPY sensor_readings (\"id\", \"timestamp\", \"sensor_id\", \"floor_number\", \"equipment_type\", "
                + "\"reading_value\", \"unit\", \"status\") FROM STDIN (FORMAT binary)")
    }

    @Test(arguments: [
        ("{}", [Range<Int64>]()),
        ("{[1,40001)}", [1..<40001]),
        ("{[-5,-2),[7,9),[10,11)}", [-5..<(-2), 7..<9, 10..<11]),
    ])
    func multirangeTextParses(_ c: (String, [Range<Int64>])) throws {
        #expect(try ChunkLoader.parseMultirange(c.0) == c.1)
    }

    @Test(arguments: ["", "[1,2)", "{[1,2]}", "{(1,2)}", "{[2,1)}", "{[a,2)}", "{[1,2),}x"])
    func malformedMultirangeIsRejected(_ text: String) {
        #expect(throws: PipelineError.self) { try ChunkLoader.parseMultirange(text) }
    }
}

@Suite struct IDBlockTests {
    @Test func insertRowsBecomeMergedRanges() {
        #expect(IDBlock.multirange(base: 100, rows: 0..<5) { _ in true } == "{[100,105)}")
        #expect(IDBlock.multirange(base: 100, rows: 2..<5) { _ in true } == "{[102,105)}")
        #expect(IDBlock.multirange(base: 100, rows: 0..<6) { $0 != 2 && $0 != 3 } == "{[100,102),[104,106)}")
        #expect(IDBlock.multirange(base: 7, rows: 0..<3) { _ in false } == "{}")
        #expect(IDBlock.multirange(base: 7, rows: 0..<0) { _ in true } == "{}")
    }
}
