/// A set of columns that go missing together: one S1 multisensor (3 columns) or one power meter panel.
///
/// Missing data come in runs, minutes to hours long, from a two-state process whose long-run missing share is the
/// reference's rate for the year, floor, channel type and month. S1 devices are also away during the maintenance gap.
struct SampleDropoutGroup {
    /// What the group measures; selects the rates.
    enum Category: Hashable {
        /// An S1 multisensor of a zone.
        case s1(zone: Int)
        /// Floor 2's three large AC meters, which fail together (≈28% missing in January 2019, ≈42% in February).
        case floor2LargeAC
        /// Floors 3–7 `z1_AC2..4`, ≈28% missing in 2018.
        case zone1SplitAC
        /// Any other power meter panel of a zone (lights, plugs, ACs).
        case power(zone: Int, acs: Bool)
    }

    let category: Category
    /// Minutes during which the device is away for maintenance (S1 only).
    var gap: Range<Int> = 0..<0
    /// A year in which the device is empty throughout (floor 2 `z4_S1` in 2018).
    var emptyYear = 0

    var missing = false
    var remaining = 0
    /// Long-run missing share, per 10,000.
    var rate = 0
    /// Mean length of a missing run, minutes.
    var meanMissing = 60
    /// Set when the whole day is blocked (gap or empty year).
    var blockedToday = false

    init(category: Category) {
        self.category = category
    }

    /// Sets the rates that hold on one day.
    mutating func configure(floor: Int, date: CivilDate, day: Int) {
        let y2018 = date.year <= 2018
        switch category {
        case .s1:
            (rate, meanMissing) = y2018 ? (1000, 240) : (600, 180)
        case .floor2LargeAC:
            if y2018 {
                (rate, meanMissing) = (100, 90)
            } else if date.month == 1 {
                (rate, meanMissing) = (2800, 900)
            } else if date.month == 2 {
                (rate, meanMissing) = (4200, 1200)
            } else {
                (rate, meanMissing) = (20, 60)
            }
        case .zone1SplitAC:
            (rate, meanMissing) = y2018 ? (2800, 700) : (200, 120)
        case .power:
            switch floor {
            case 1: (rate, meanMissing) = y2018 ? (120, 60) : (0, 60)
            case 2: (rate, meanMissing) = y2018 ? (100, 90) : (20, 60)
            default: (rate, meanMissing) = y2018 ? (600, 150) : (200, 120)
            }
        }
        let dayRange = (day * 1440)..<((day + 1) * 1440)
        blockedToday =
            date.year == emptyYear || (gap.lowerBound <= dayRange.lowerBound && gap.upperBound >= dayRange.upperBound)
    }

    /// Draws the opening state from the long-run rate.
    mutating func start(random r: inout SampleRandom) {
        missing = rate > 0 && r.next(below: 10_000) < rate
        remaining = Self.runLength(mean: missing ? meanMissing : presentMean, random: &r)
    }

    private var presentMean: Int {
        rate <= 0 ? Int.max / 4 : max(1, meanMissing * (10_000 - rate) / rate)
    }

    /// Advances one minute.
    @inline(__always)
    mutating func advance(random r: inout SampleRandom) {
        remaining -= 1
        if remaining <= 0 {
            missing = rate > 0 && !missing
            remaining = Self.runLength(mean: missing ? meanMissing : presentMean, random: &r)
        }
    }

    /// Whether the group's cells hold values at `minute`.
    @inline(__always)
    func isPresent(at minute: Int) -> Bool {
        !missing && !blockedToday && !gap.contains(minute)
    }

    /// A run length with the given mean (roughly): mostly short, some hours long, a few several times the mean.
    static func runLength(mean: Int, random r: inout SampleRandom) -> Int {
        if mean >= Int.max / 8 { return Int.max / 4 }
        let u = r.next(below: 100)
        if u < 60 { return 1 + r.next(below: max(1, mean / 2)) }
        if u < 90 { return mean / 2 + r.next(below: max(1, mean * 3 / 2)) }
        return 2 * mean + r.next(below: max(1, mean * 3))
    }
}
