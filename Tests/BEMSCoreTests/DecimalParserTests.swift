import Testing

@testable import BEMSCore

@Suite struct DecimalParserTests {
    @Test(
        arguments: [
            ("0", 0), ("0.0", 0), ("0.00", 0), ("-0", 0), ("+0", 0), ("4762.43", 47_624_300), ("0.01", 100),
            ("28.36", 283_600), ("62.5", 625_000), (".5", 5_000), ("5.", 50_000), ("999999.9999", 9_999_999_999),
            ("-999999.9999", -9_999_999_999), ("0.0001", 1), ("-0.0001", -1), ("1.50000000", 15_000),
            ("000012.3400", 123_400),
            ("123456", 1_234_560_000),
        ] as [(String, Int64)])
    func acceptsPlainDecimalsExactly(text: String, expected: Int64) throws {
        #expect(try DecimalParser.parse(text) == expected)
    }

    @Test(
        arguments: [
            ("1000000", RejectCode.outOfRange), ("1000000.0", .outOfRange), ("12345678901234567890", .outOfRange),
            ("0.00001", .tooManyDecimals), ("1.23456", .tooManyDecimals), ("1e308", .badNumber), ("1E5", .badNumber),
            ("NaN", .badNumber), ("Infinity", .badNumber), ("-", .badNumber), ("", .badNumber), (".", .badNumber),
            ("1.2.3", .badNumber), ("1,5", .badNumber), (" 1", .badNumber), ("1 ", .badNumber), ("0x10", .badNumber),
            ("1\u{0}", .nulByte), ("\"1\"", .badQuote), ("--1", .badNumber), ("１", .badNumber),
        ] as [(String, RejectCode)])
    func rejectsWithTheRightCode(text: String, code: RejectCode) {
        let error = #expect(throws: NumberParseError.self) { try DecimalParser.parse(text) }
        #expect(error?.code == code)
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = [0x31, 0xFF, 0x32]
        let error = #expect(throws: NumberParseError.self) {
            try bytes.withUnsafeBytes { raw throws(NumberParseError) in try DecimalParser.parse(raw, from: 0, to: 3) }
        }
        #expect(error?.code == .invalidUTF8)
        #expect(error?.offset == 1)
    }

    @Test(arguments: [0, 1, -1, 47_624_300, 9_999_999_999, -9_999_999_999, 5_000, 123_400] as [Int64])
    func formatThenParseRoundTrips(value: Int64) throws {
        #expect(try DecimalParser.parse(ScaledDecimal.format(value)) == value)
    }

    @Test func formatsFourDecimals() {
        #expect(ScaledDecimal.format(47_624_300) == "4762.4300")
        #expect(ScaledDecimal.format(-100) == "-0.0100")
        #expect(ScaledDecimal.format(0) == "0.0000")
    }
}
