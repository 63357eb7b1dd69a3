/// Why a Date cell could not become a timestamp.
package struct TimestampParseError: Error, Equatable, Sendable {
    package var offset: Int
    package var message: String
}

/// Parses the files' naive local timestamps, `YYYY-MM-DD HH:MM:SS`, into seconds of the local wall clock since
/// 1970-01-01 00:00:00 (no time zone applied yet; see ``LocalTimeConverter``).
///
/// Hand-written for speed: it runs once per row and checks the calendar (month lengths, leap years) exactly.
package enum TimestampParser {
    /// Length of `YYYY-MM-DD HH:MM:SS`.
    package static let length = 19

    @inline(__always)
    package static func parse(
        _ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int
    ) throws(TimestampParseError) -> Int64 {
        guard end - start == length else {
            let text = String(
                decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<min(end, start + 40)]), as: UTF8.self)
            throw TimestampParseError(
                offset: 0, message: "expected a timestamp YYYY-MM-DD HH:MM:SS, found \"\(text)\"")
        }
        func digits(_ at: Int, _ count: Int) throws(TimestampParseError) -> Int {
            var value = 0
            for k in 0..<count {
                let d = bytes[start + at + k] &- UInt8(ascii: "0")
                guard d < 10 else {
                    throw TimestampParseError(offset: at + k, message: "expected a digit in the timestamp")
                }
                value = value * 10 + Int(d)
            }
            return value
        }
        func separator(_ at: Int, _ expected: UInt8) throws(TimestampParseError) {
            guard bytes[start + at] == expected else {
                throw TimestampParseError(
                    offset: at, message: "expected '\(Character(Unicode.Scalar(expected)))' in the timestamp")
            }
        }
        let year = try digits(0, 4)
        try separator(4, UInt8(ascii: "-"))
        let month = try digits(5, 2)
        try separator(7, UInt8(ascii: "-"))
        let day = try digits(8, 2)
        try separator(10, UInt8(ascii: " "))
        let hour = try digits(11, 2)
        try separator(13, UInt8(ascii: ":"))
        let minute = try digits(14, 2)
        try separator(16, UInt8(ascii: ":"))
        let second = try digits(17, 2)
        guard year >= 1900, year <= 2199 else {
            throw TimestampParseError(offset: 0, message: "year \(year) is outside 1900–2199")
        }
        guard month >= 1, month <= 12 else {
            throw TimestampParseError(offset: 5, message: "month \(month) does not exist")
        }
        guard day >= 1, day <= daysInMonth(year: year, month: month) else {
            throw TimestampParseError(offset: 8, message: "day \(day) does not exist in \(year)-\(pad2(month))")
        }
        guard hour < 24 else { throw TimestampParseError(offset: 11, message: "hour \(hour) does not exist") }
        guard minute < 60 else { throw TimestampParseError(offset: 14, message: "minute \(minute) does not exist") }
        guard second < 60 else { throw TimestampParseError(offset: 17, message: "second \(second) does not exist") }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Parses a whole string (tests, command-line dates). Not for hot loops.
    package static func parse(_ text: String) throws(TimestampParseError) -> Int64 {
        let bytes = Array(text.utf8)
        let result: Result<Int64, TimestampParseError> = bytes.withUnsafeBytes { raw in
            do throws(TimestampParseError) {
                return .success(try parse(raw, from: 0, to: raw.count))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    package static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The calendar date of a day number since 1970-01-01.
    package static func civil(fromDays z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Formats local wall-clock seconds as `YYYY-MM-DD HH:MM:SS`.
    package static func format(localSeconds: Int64) -> String {
        let days = Int((localSeconds >= 0 ? localSeconds : localSeconds - 86_399) / 86_400)
        let rest = Int(localSeconds - Int64(days) * 86_400)
        let (y, m, d) = civil(fromDays: days)
        return "\(y)-\(pad2(m))-\(pad2(d)) \(pad2(rest / 3600)):\(pad2(rest / 60 % 60)):\(pad2(rest % 60))"
    }

    /// Formats a day number as `YYYY-MM-DD`.
    package static func formatDay(_ days: Int) -> String {
        let (y, m, d) = civil(fromDays: days)
        return "\(y)-\(pad2(m))-\(pad2(d))"
    }

    /// Parses `YYYY-MM-DD` into a day number since 1970-01-01.
    package static func parseDay(_ text: String) -> Int? {
        guard text.utf8.count == 10 else { return nil }
        return (try? parse(text + " 00:00:00")).map { Int($0 / 86_400) }
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
}
