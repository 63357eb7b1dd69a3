/// What the sample generator writes: period, floors, seed and byte-level options.
package struct SampleConfiguration: Hashable, Sendable {
    /// The line terminator of every line.
    package enum LineEnding: String, Hashable, Sendable, CaseIterable {
        /// `\n`, the default.
        case lf
        /// `\r\n`.
        case crlf

        /// The terminator bytes.
        package var bytes: [UInt8] {
            switch self {
            case .lf: return [0x0A]
            case .crlf: return [0x0D, 0x0A]
            }
        }
    }

    /// The first day of the period (Bangkok local, starting at 00:00:00).
    package var start: CivilDate
    /// The number of whole days in the period; every minute of each day is one row.
    package var days: Int
    /// The floors to write, each 1 through 7, in the order given.
    package var floors: [Int]
    /// The seed; the same configuration always produces byte-identical files.
    package var seed: UInt64
    /// The line terminator.
    package var lineEnding: LineEnding
    /// Whether each file starts with the UTF-8 byte order mark `EF BB BF`.
    package var byteOrderMark: Bool
    /// Whether the 2019 floor-6 file ends with the junk line `2` (no terminator), as the real file does.
    package var truncateFloor6: Bool
    /// The last minute (inclusive, minutes since 1970-01-01 local) written to floor 6, or `nil` for the whole period.
    ///
    /// The real 2019Floor6.csv stops at 2019-10-22 13:27:00; ``full(seed:floors:lineEnding:byteOrderMark:)`` sets it.
    package var floor6LastMinute: Int?

    /// The defaults of `bems sample`: 2019-03-04, 7 days, all floors, seed 42, LF, no BOM, no truncation.
    package static let defaultStart = CivilDate(year: 2019, month: 3, day: 4)!

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - start: The first day.
    ///   - days: The number of days, at least 1.
    ///   - floors: Floors 1 through 7.
    ///   - seed: The PRNG seed.
    ///   - lineEnding: LF or CRLF.
    ///   - byteOrderMark: Whether to write a UTF-8 BOM.
    ///   - truncateFloor6: Whether 2019Floor6.csv ends with the junk line `2`.
    ///   - floor6LastMinute: An optional early end for floor 6.
    package init(
        start: CivilDate = SampleConfiguration.defaultStart,
        days: Int = 7,
        floors: [Int] = Array(FloorSchema.floors),
        seed: UInt64 = 42,
        lineEnding: LineEnding = .lf,
        byteOrderMark: Bool = false,
        truncateFloor6: Bool = false,
        floor6LastMinute: Int? = nil
    ) {
        self.start = start
        self.days = days
        self.floors = floors
        self.seed = seed
        self.lineEnding = lineEnding
        self.byteOrderMark = byteOrderMark
        self.truncateFloor6 = truncateFloor6
        self.floor6LastMinute = floor6LastMinute
    }

    /// The shape of the whole real dataset: 2018-07-01 through 2019-12-31, 2019 floor 6 ending at
    /// 2019-10-22 13:27:00 followed by the junk line `2`.
    ///
    /// - Parameters:
    ///   - seed: The PRNG seed.
    ///   - floors: The floors to write; all seven by default.
    ///   - lineEnding: LF or CRLF.
    ///   - byteOrderMark: Whether to write a UTF-8 BOM.
    package static func full(
        seed: UInt64 = 42,
        floors: [Int] = Array(FloorSchema.floors),
        lineEnding: LineEnding = .lf,
        byteOrderMark: Bool = false
    ) -> SampleConfiguration {
        let start = CivilDate(year: 2018, month: 7, day: 1)!
        let end = CivilDate(year: 2020, month: 1, day: 1)!
        let cut = CivilDate(year: 2019, month: 10, day: 22)!.dayNumber * 1440 + 13 * 60 + 27
        return SampleConfiguration(
            start: start,
            days: end.dayNumber - start.dayNumber,
            floors: floors,
            seed: seed,
            lineEnding: lineEnding,
            byteOrderMark: byteOrderMark,
            truncateFloor6: true,
            floor6LastMinute: cut
        )
    }

    /// The first minute of the period (minutes since 1970-01-01 00:00 local).
    package var firstMinute: Int { start.dayNumber * 1440 }

    /// The minute after the last one of the period.
    package var endMinute: Int { (start.dayNumber + days) * 1440 }

    /// Checks the values a caller can get wrong.
    ///
    /// - Throws: ``SampleGeneratorError/invalidConfiguration(_:)``.
    package func validate() throws(SampleGeneratorError) {
        guard days >= 1, days <= 100_000 else {
            throw .invalidConfiguration("days must be between 1 and 100000, got \(days)")
        }
        guard !floors.isEmpty else { throw .invalidConfiguration("at least one floor is required") }
        for floor in floors where !FloorSchema.floors.contains(floor) {
            throw .invalidConfiguration("floor \(floor) does not exist; floors are 1 through 7")
        }
        guard Set(floors).count == floors.count else { throw .invalidConfiguration("floors must not repeat") }
        guard CivilDate(dayNumber: start.dayNumber + days - 1).year <= 9999 else {
            throw .invalidConfiguration("the period ends after year 9999")
        }
    }
}

/// An error of the sample generator.
package enum SampleGeneratorError: Error, Equatable, CustomStringConvertible {
    /// The configuration is not usable; the message says why.
    case invalidConfiguration(String)
    /// A file could not be created or written; carries the path, the operation and `errno`.
    case io(path: String, operation: String, errno: Int32)

    package var description: String {
        switch self {
        case .invalidConfiguration(let message):
            return "invalid sample configuration: \(message)"
        case .io(let path, let operation, let code):
            return "cannot \(operation) \(path) (errno \(code))"
        }
    }
}

/// One file the generator wrote.
package struct SampleFileSummary: Hashable, Sendable {
    /// The file name, for example `2019Floor6.csv`.
    package var name: String
    /// The calendar year of the rows.
    package var year: Int
    /// The floor.
    package var floor: Int
    /// Data lines after the header, including the junk line `2` when present.
    package var rows: Int
    /// Bytes in the file.
    package var bytes: Int
}

/// What a generator run wrote.
package struct SampleSummary: Hashable, Sendable {
    /// The files in the order written (floor by floor, year by year).
    package var files: [SampleFileSummary]
    /// Data lines over all files.
    package var rows: Int { files.reduce(0) { $0 + $1.rows } }
    /// Bytes over all files.
    package var bytes: Int { files.reduce(0) { $0 + $1.bytes } }
}
