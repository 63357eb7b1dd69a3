import Testing

@testable import BEMSCore

@Suite struct TimestampParserTests {
    @Test(
        arguments: [
            ("1970-01-01 00:00:00", 0), ("2019-01-01 08:00:00", 1_546_329_600), ("2018-07-01 00:00:00", 1_530_403_200),
            ("2000-02-29 23:59:59", 951_868_799), ("1969-12-31 23:59:00", -60), ("2019-12-31 23:59:00", 1_577_836_740),
            ("1900-03-01 00:00:00", -2_203_891_200),
        ] as [(String, Int64)])
    func parsesWallClockSeconds(text: String, expected: Int64) throws {
        #expect(try TimestampParser.parse(text) == expected)
    }

    @Test(arguments: [
        "2019-02-29 00:00:00", "2019-13-01 00:00:00", "2019-00-10 00:00:00", "2019-04-31 00:00:00",
        "2019-01-01 24:00:00",
        "2019-01-01 00:60:00", "2019-01-01 00:00:60", "2019-01-01T00:00:00", "2019/01/01 00:00:00", "2019-01-01 00:00",
        "2", "", "2019-01-01 00:00:00 ", "x019-01-01 00:00:00", "1899-12-31 00:00:00", "2100-02-29 00:00:00",
    ])
    func rejectsBadOrImpossibleTimes(text: String) {
        #expect(throws: TimestampParseError.self) { try TimestampParser.parse(text) }
    }

    @Test func formatsAndParsesDays() {
        #expect(TimestampParser.format(localSeconds: 1_546_329_600) == "2019-01-01 08:00:00")
        #expect(TimestampParser.format(localSeconds: -60) == "1969-12-31 23:59:00")
        #expect(TimestampParser.parseDay("2019-03-04").map(TimestampParser.formatDay) == "2019-03-04")
        #expect(TimestampParser.parseDay("2019-02-30") == nil)
        for days in stride(from: -800_000, through: 800_000, by: 997) {
            let (y, m, d) = TimestampParser.civil(fromDays: days)
            #expect(TimestampParser.daysFromCivil(year: y, month: m, day: d) == days)
        }
    }

    @Test func bangkokIsUTCPlusSevenWithoutDST() throws {
        var converter = try LocalTimeConverter(identifier: "Asia/Bangkok")
        let local = try TimestampParser.parse("2019-01-01 08:00:00")
        #expect(converter.utc(fromLocal: local) == 1_546_304_400)  // 2019-01-01 01:00:00 UTC
        let july = try TimestampParser.parse("2019-07-01 00:00:00")
        #expect(july - converter.utc(fromLocal: july) == 25_200)
        #expect(converter.local(fromUTC: 1_546_304_400) == local)
    }

    @Test func dstZonesUseTheOffsetOfTheDay() throws {
        var converter = try LocalTimeConverter(identifier: "Europe/Athens")
        let winter = try TimestampParser.parse("2019-01-15 12:00:00")
        let summer = try TimestampParser.parse("2019-07-15 12:00:00")
        #expect(winter - converter.utc(fromLocal: winter) == 7_200)
        #expect(summer - converter.utc(fromLocal: summer) == 10_800)
    }

    @Test func unknownZoneIsAUsageError() {
        let error = #expect(throws: PipelineError.self) { try LocalTimeConverter(identifier: "Mars/Olympus") }
        #expect(error?.exitStatus == .usage)
    }
}
