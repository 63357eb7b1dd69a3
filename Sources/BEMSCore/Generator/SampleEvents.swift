/// Calendar facts and placed events (outages, spikes, the S1 maintenance gap) of the sample generator.
///
/// Every event is a pure function of seed, floor and calendar position, so a given minute looks the same however
/// the period around it is chosen.
enum SampleEvents {
    // MARK: - Calendar

    /// Thai public holidays (with substitution days) in the dataset's period; the building is closed on them.
    static let holidays: Set<Int> = {
        let dates: [(Int, Int, Int)] = [
            (2018, 7, 27), (2018, 7, 30), (2018, 8, 13), (2018, 10, 15), (2018, 10, 23), (2018, 12, 5),
            (2018, 12, 10), (2018, 12, 31), (2019, 1, 1), (2019, 2, 19), (2019, 4, 8), (2019, 4, 15), (2019, 4, 16),
            (2019, 5, 1), (2019, 5, 6), (2019, 5, 20), (2019, 6, 3), (2019, 7, 16), (2019, 7, 29), (2019, 8, 12),
            (2019, 10, 14), (2019, 10, 23), (2019, 12, 5), (2019, 12, 10), (2019, 12, 31),
        ]
        return Set(dates.map { CivilDate(year: $0.0, month: $0.1, day: $0.2)!.dayNumber })
    }()

    /// 0 closed (Sunday, holiday, most Saturdays), 1 half day (some Saturdays), 2 working day.
    static func dayType(day: Int, floor: Int, seed: UInt64) -> Int {
        let weekday = CivilDate(dayNumber: day).weekday
        if holidays.contains(day) || weekday == 0 { return 0 }
        if weekday == 6 {
            return SampleRandom.hash(Int(truncatingIfNeeded: seed), floor, day, 0x5A7) % 100 < 30 ? 1 : 0
        }
        return 2
    }

    /// Daylight on a 0–360 scale: 0 before 06:30 and after 18:30, peaking at 12:30.
    @inline(__always)
    static func daylight(minute: Int) -> Int64 {
        let distance = abs(minute - 750)
        return distance >= 360 ? 0 : Int64(360 - distance)
    }

    // MARK: - Maintenance gap

    /// The minutes (half-open) during which an S1 device was away for maintenance: from the afternoon of Friday
    /// 2018-09-14 until it came back during 2019-03-06 working hours (spec: about 15 Sep 2018 to 5 Mar 2019).
    static func maintenanceGap(floor: Int, zone: Int, seed: UInt64) -> Range<Int> {
        let h = SampleRandom.hash(Int(truncatingIfNeeded: seed), floor, zone, 0x6A9)
        let start = CivilDate(year: 2018, month: 9, day: 14)!.dayNumber * 1440 + 13 * 60 + Int(h % 600)
        let end = CivilDate(year: 2019, month: 3, day: 6)!.dayNumber * 1440 + 9 * 60 + Int((h >> 20) % 480)
        return start..<end
    }

    // MARK: - Outages (all-empty rows)

    /// Outage stratum lengths in days: one building-wide outage per stratum, one floor-level outage per stratum.
    static let buildingStratumDays = 28
    static let floorStratumDays = 60

    /// Long outages recorded for single files and months (placement within the month is invented).
    static func fixedOutages(floor: Int) -> [Range<Int>] {
        func at(_ y: Int, _ m: Int, _ d: Int, _ hh: Int, _ mm: Int, minutes: Int) -> Range<Int> {
            let start = CivilDate(year: y, month: m, day: d)!.dayNumber * 1440 + hh * 60 + mm
            return start..<(start + minutes)
        }
        // Building-wide: about 337 minutes in July 2019 and 130 in September 2019 (seen on floor 2). The two 2018
        // outages are invented so that 2018 files also have a few hundred all-empty rows.
        var list = [
            at(2019, 7, 13, 5, 31, minutes: 337), at(2019, 9, 7, 13, 2, minutes: 130),
            at(2018, 8, 25, 7, 12, minutes: 214), at(2018, 11, 17, 13, 40, minutes: 118),
        ]
        // 2018 floors 3, 4 and 5 have about 59,101, 33,319 and 6,271 all-empty rows.
        switch floor {
        case 3: list.append(at(2018, 11, 1, 10, 14, minutes: 59_101))
        case 4: list.append(at(2018, 10, 8, 9, 36, minutes: 33_319))
        case 5: list.append(at(2018, 8, 6, 14, 3, minutes: 6_271))
        default: break
        }
        return list
    }

    /// The outages of one floor that touch `day`.
    static func outages(day: Int, floor: Int, seed: UInt64) -> [Range<Int>] {
        let dayRange = (day * 1440)..<((day + 1) * 1440)
        var list: [Range<Int>] = []
        for (stratumDays, tag, perFloor) in [(buildingStratumDays, 0xB0, false), (floorStratumDays, 0xF0, true)] {
            let stratum = Self.floorDiv(day, stratumDays)
            for s in (stratum - 1)...stratum {
                let h = SampleRandom.hash(Int(truncatingIfNeeded: seed), perFloor ? floor : 0, s, tag)
                let start = s * stratumDays * 1440 + Int(h % UInt64(stratumDays * 1440))
                let length = perFloor ? 1 + Int((h >> 32) % 10) : 1 + Int((h >> 32) % 8)
                let outage = start..<(start + length)
                if outage.overlaps(dayRange) && !hidesFixedSpike(outage, floor: floor) { list.append(outage) }
            }
        }
        for outage in fixedOutages(floor: floor) where outage.overlaps(dayRange) { list.append(outage) }
        return list
    }

    private static func hidesFixedSpike(_ outage: Range<Int>, floor: Int) -> Bool {
        fixedSpikes(floor: floor).contains { outage.contains($0.minute) }
    }

    // MARK: - Spikes

    /// A single-minute bad value that overrides a cell.
    struct Spike {
        var minute: Int
        /// Index into the floor's data columns.
        var column: Int
        /// The value, hundredths.
        var value: Int64
    }

    /// The spikes reported for the real files. Only the first has a known time; the other two are placed in 2018.
    static func fixedSpikes(floor: Int) -> [(minute: Int, header: String, value: Int64)] {
        guard floor == 1 else { return [] }
        func at(_ y: Int, _ m: Int, _ d: Int, _ hh: Int, _ mm: Int) -> Int {
            CivilDate(year: y, month: m, day: d)!.dayNumber * 1440 + hh * 60 + mm
        }
        return [
            (at(2018, 9, 11, 9, 54), "z3_Light(kW)", 476_243),
            (at(2018, 8, 16, 10, 21), "z2_AC2(kW)", 79_872),
            (at(2018, 11, 22, 14, 7), "z4_Light(kW)", 51_201),
        ]
    }

    /// The spikes of one floor on `day`: one power spike per 7-day stratum (100–5000 kW), a low-temperature
    /// reading in about half of the 30-day strata, and the fixed ones.
    static func spikes(
        day: Int,
        floor: Int,
        seed: UInt64,
        powerColumns: [Int],
        temperatureColumns: [Int],
        headers: [String]
    ) -> [Spike] {
        var list: [Spike] = []
        let dayRange = (day * 1440)..<((day + 1) * 1440)
        if !powerColumns.isEmpty {
            let s = floorDiv(day, 7)
            var r = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, s, 0x5B1)
            let minute = s * 7 * 1440 + r.next(below: 7 * 1440)
            let column = powerColumns[r.next(below: powerColumns.count)]
            let band = r.next(below: 10)
            let value: Int64 =
                band < 5
                ? Int64(r.next(in: 10_000...30_000))
                : band < 8
                    ? Int64(r.next(in: 30_000...100_000))
                    : Int64(r.next(in: 100_000...500_000))
            if dayRange.contains(minute) { list.append(Spike(minute: minute, column: column, value: value)) }
        }
        if !temperatureColumns.isEmpty {
            let s = floorDiv(day, 30)
            var r = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, s, 0x7E1)
            let minute = s * 30 * 1440 + r.next(below: 30 * 1440)
            if r.chance(perMille: 500) && dayRange.contains(minute) {
                let column = temperatureColumns[r.next(below: temperatureColumns.count)]
                list.append(Spike(minute: minute, column: column, value: Int64(r.next(in: 900...1499))))
            }
        }
        for fixed in fixedSpikes(floor: floor) where dayRange.contains(fixed.minute) {
            if let column = headers.firstIndex(of: fixed.header) {
                list.append(Spike(minute: fixed.minute, column: column, value: fixed.value))
            }
        }
        return list.sorted { $0.minute < $1.minute }
    }

    @inline(__always)
    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    // MARK: - Real first rows

    /// The first non-empty readings of each real file at its first timestamp (2018-07-01 00:00 or
    /// 2019-01-01 00:00), from the reference's §5 (validation-report.json). The generator writes them when a period
    /// starts at that minute, so `--full` files open like the real ones.
    static func realFirstRow(year: Int, floor: Int) -> [(header: String, value: Int64)] {
        let f3Zone1: [String] = ["z1_AC1", "z1_AC2", "z1_AC3", "z1_AC4", "z1_Light", "z1_Plug"]
        func kw(_ names: [String], _ values: [Int64]) -> [(header: String, value: Int64)] {
            zip(names, values).map { ("\($0.0)(kW)", $0.1) }
        }
        func s1(_ zone: String, _ t: Int64, _ rh: Int64, _ lux: Int64) -> [(header: String, value: Int64)] {
            [("\(zone)_S1(degC)", t), ("\(zone)_S1(RH%)", rh), ("\(zone)_S1(lux)", lux)]
        }
        let floor1 = [
            "z1_Light", "z1_Plug", "z2_AC1", "z2_AC2", "z2_AC3", "z2_AC4", "z2_Light", "z2_Plug", "z3_Light", "z3_Plug",
        ]
        switch (year, floor) {
        case (2018, 1): return kw(floor1, [1294, 1856, 4524, 1, 1, 0, 1376, 1764, 1092, 89])
        case (2018, 2):
            return kw(["z1_AC1", "z1_Light", "z1_Plug"], [0, 1, 15]) + s1("z1", 2836, 5893, 0)
                + kw(["z2_AC1", "z2_AC2", "z2_AC3", "z2_AC4"], [108, 0, 0, 0])
        case (2018, 3): return kw(f3Zone1, [0, 0, 0, 7, 0, 3]) + s1("z1", 2844, 6067, 0) + kw(["z2_AC1"], [0])
        case (2018, 4): return kw(f3Zone1, [0, 0, 0, 874, 0, 22]) + s1("z1", 2828, 6250, 0) + kw(["z2_AC1"], [0])
        case (2018, 5): return kw(f3Zone1, [0, 0, 0, 0, 34, 17]) + s1("z1", 2754, 6829, 300) + kw(["z2_AC1"], [0])
        case (2018, 6):
            return kw(["z1_AC1", "z1_Light", "z1_Plug"], [0, 0, 31]) + s1("z1", 2757, 7219, 0)
                + kw(["z2_AC1", "z2_Light", "z2_Plug"], [0, 1, 13]) + [("z2_S1(degC)", 2779)]
        case (2018, 7): return kw(f3Zone1, [0, 0, 1, 0, 0, 2]) + s1("z1", 2823, 6442, 0) + kw(["z2_AC1"], [0])
        case (2019, 1): return kw(floor1, [3, 58, 231, 2115, 1, 2, 1737, 1520, 1001, 38])
        case (2019, 2):
            return kw(
                [
                    "z1_AC1", "z1_Light", "z1_Plug", "z2_AC1", "z2_AC2", "z2_AC3", "z2_AC4", "z2_AC5", "z2_AC6",
                    "z2_AC7",
                ],
                [0, 31, 9, 0, 115, 85, 91, 0, 24, 0]
            )
        case (2019, 3), (2019, 4), (2019, 5), (2019, 7):
            let zone1: [Int64] =
                switch floor {
                case 3: [0, 0, 0, 7, 0, 3]
                case 4: [0, 0, 0, 0, 0, 27]
                case 5: [0, 0, 0, 0, 0, 13]
                default: [0, 0, 1, 0, 0, 13]
                }
            let rest: [Int64] = floor == 3 || floor == 4 ? [0, 0, 2, 2] : [0, 0, 0, 2]
            return kw(f3Zone1, zone1) + kw(["z2_AC1", "z2_Light", "z2_Plug", "z3_Light"], rest)
        case (2019, 6):
            return kw(
                [
                    "z1_AC1", "z1_Light", "z1_Plug", "z2_AC1", "z2_Light", "z2_Plug", "z3_Light", "z3_Plug", "z4_AC1",
                    "z4_AC2",
                ],
                [0, 0, 20, 0, 1, 1, 2, 28, 0, 0]
            )
        default: return []
        }
    }
}
