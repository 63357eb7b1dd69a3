/// One generated column of a floor file: its behaviour model, per-year parameters and running state.
///
/// All values are integer hundredths. Power follows day schedules with standby levels and held values; temperature
/// and humidity are mean-reverting random walks in 0.01 steps; lux is integer-valued and follows daylight.
struct SampleChannel {
    /// How a column behaves.
    enum Kind: UInt8 {
        /// Office lighting: 0 or 0.01–0.02 standby at night, 2–7 kW banks during working hours.
        case light
        /// Floor-1 lighting that stays on around the clock (10–17 kW).
        case lightAllDay
        /// Office plug load: 0.02–2.3 kW drifting around a schedule.
        case plug
        /// Floor-1 plug load, large day and night.
        case plugAllDay
        /// Large AC meter: 0 (or a fan level) at night, 8–30 kW cycling when running, ramping at the morning start.
        case acLarge
        /// Small split AC: 0–1.3 kW, compressor cycling; some run all night.
        case acSmall
        /// Large unit that is mostly 0 and runs on a few days (floors 3–7 `z1_AC1`).
        case acRare
        /// A dead meter that reads `0.0` all the time (floor 2 `z2_AC11` in 2019).
        case acZero
        /// Floor-1 AC that runs around the clock at 15–45 kW.
        case acAllDay
        /// S1 temperature, °C.
        case temperature
        /// S1 relative humidity, %.
        case humidity
        /// S1 illuminance, lux (integer-valued).
        case lux
    }

    let column: Int
    let floor: Int
    let zone: Int
    let equipment: EquipmentType
    /// The AC number within the zone (`ACk`), 0 for other columns.
    let unit: Int
    /// The index of the dropout group (a meter panel or an S1 device) the column belongs to.
    var group = 0

    // Per-year parameters.
    var kind = Kind.light
    var wholeAsInteger = true
    var offLevel: Int64 = 0
    var onLevel: Int64 = 0
    var nightLevel: Int64 = 0
    var dayLevel: Int64 = 0
    var alwaysOn = false

    // Running state.
    var value: Int64 = 0
    var target: Int64 = 0
    var hold: Int32 = 0
    var phase = false
    var wasOn = false

    // Today's schedule, minutes of the day; `onMinute == offMinute` means off all day.
    var onMinute: Int32 = 0
    var offMinute: Int32 = 0

    init(column: Int, floor: Int, sensor: SensorColumn) {
        self.column = column
        self.floor = floor
        self.zone = sensor.zone
        self.equipment = sensor.equipmentType
        if sensor.equipmentType == .ac, let k = sensor.sensorID.split(separator: "_").last?.dropFirst(2), let n = Int(k)
        {
            unit = n
        } else {
            unit = 0
        }
    }

    /// Whether the column is one of the S1 multisensor columns.
    var isS1: Bool { equipment == .temperature || equipment == .humidity || equipment == .illuminance }

    // MARK: - Per-year parameters

    /// Chooses kind and levels for a calendar year; the draws depend only on seed, floor, column and year.
    mutating func configure(year: Int, seed: UInt64) {
        var r = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, column, year, 0x5A3)
        wholeAsInteger = r.chance(perMille: 500)
        alwaysOn = false
        switch equipment {
        case .light:
            if floor == 1 && r.chance(perMille: 750) {
                kind = .lightAllDay
                nightLevel = Int64(r.next(in: 1000...1700))
                dayLevel = nightLevel + Int64(r.next(in: 50...400))
            } else {
                kind = .light
                onLevel = Int64(floor == 1 ? r.next(in: 500...1200) : r.next(in: 150...700))
                offLevel = Int64([0, 0, 1, 1, 2, 3][r.next(below: 6)])
            }
        case .plug:
            if floor == 1 && r.chance(perMille: 650) {
                kind = .plugAllDay
                nightLevel = Int64(r.next(in: 1450...1850))
                dayLevel = nightLevel + Int64(r.next(in: 0...150))
            } else {
                kind = .plug
                nightLevel = Int64(r.next(in: 2...40))
                dayLevel = Int64(r.next(in: 20...230))
            }
        case .ac:
            configureAC(year: year, random: &r)
        case .temperature:
            kind = .temperature
            let warm = year <= 2018 ? 2720 : 2500
            let cool = year <= 2018 ? 2460 : 2260
            nightLevel = Int64(warm + r.next(in: 0...150))
            dayLevel = Int64(cool + r.next(in: 0...150))
        case .humidity:
            kind = .humidity
            nightLevel = Int64(r.next(in: 6400...7200))
            dayLevel = Int64(r.next(in: 5750...6250))
        case .illuminance:
            kind = .lux
            // Peak daylight lux of the zone and the extra lux when the lights are on.
            dayLevel = Int64([8, 16, 35, 48, 64, 80][r.next(below: 6)])
            onLevel = Int64(r.next(in: 0...6))
        }
        if kind == .acZero { wholeAsInteger = false }
        if value == 0 && target == 0 {
            // Start from a settled night-time state rather than ramping up from zero.
            switch kind {
            case .temperature, .humidity, .lightAllDay, .plugAllDay, .plug: value = nightLevel
            case .acAllDay: value = onLevel
            default: value = 0
            }
            target = value
        }
    }

    private mutating func configureAC(year: Int, random r: inout SampleRandom) {
        switch floor {
        case 1:
            // One unit runs all day (z2_AC1 in 2018 at ~45 kW, z2_AC2 in 2019 at ~21 kW); the others follow office hours.
            let allDayUnit = year <= 2018 ? 1 : 2
            if unit == allDayUnit {
                kind = .acAllDay
                onLevel = Int64(year <= 2018 ? r.next(in: 3800...4600) : r.next(in: 1900...2300))
            } else {
                kind = .acLarge
                onLevel = Int64(r.next(in: 800...2500))
                offLevel = Int64(r.next(in: 0...2))
            }
        case 2:
            if unit == 1 {
                kind = .acLarge
                onLevel = Int64(r.next(in: 1500...3000))
                offLevel = r.chance(perMille: 300) ? Int64(r.next(in: 50...110)) : 0
            } else if unit == 11 && year >= 2019 {
                kind = .acZero
            } else {
                kind = .acSmall
                onLevel = Int64(r.next(in: 80...130))
                alwaysOn = r.chance(perMille: 300)
                offLevel = r.chance(perMille: 200) ? 1 : 0
            }
        default:
            let large: Bool
            if floor == 6 {
                large = unit == 1 || unit == 4
            } else if zone == 1 {
                large = unit == 4
                if unit == 1 {
                    kind = .acRare
                    onLevel = Int64(r.next(in: 2000...4500))
                    return
                }
            } else {
                large = true
            }
            if large {
                kind = .acLarge
                onLevel = Int64(r.next(in: 900...2800))
                offLevel = r.chance(perMille: 150) ? Int64(r.next(in: 5...90)) : 0
            } else {
                kind = .acSmall
                onLevel = Int64(r.next(in: 70...130))
                alwaysOn = r.chance(perMille: 200)
                offLevel = r.chance(perMille: 300) ? 1 : 0
            }
        }
    }

    // MARK: - Daily schedule

    /// Sets today's on and off minutes.
    ///
    /// - Parameters:
    ///   - day: Days since 1970-01-01.
    ///   - dayType: 0 closed, 1 half day (Saturday morning), 2 working day.
    mutating func schedule(day: Int, dayType: Int, seed: UInt64) {
        var r = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, column, day, 0xDA7)
        onMinute = 0
        offMinute = 0
        if dayType == 0 { return }
        if r.chance(perMille: 40) { return }  // zone unused today
        switch kind {
        case .acLarge, .acSmall, .acAllDay:
            onMinute = Int32(465 + r.next(in: -10...12))
            offMinute = Int32(1050 + r.next(in: 0...70))
        case .acRare:
            if dayType == 2 && r.chance(perMille: 70) {
                onMinute = Int32(r.next(in: 480...840))
                offMinute = onMinute + Int32(r.next(in: 30...300))
            }
        case .light, .lightAllDay:
            onMinute = Int32(450 + r.next(in: -25...40))
            offMinute = Int32(1050 + r.next(in: 0...120))
        case .plug, .plugAllDay:
            onMinute = Int32(480 + r.next(in: -30...30))
            offMinute = Int32(1060 + r.next(in: 0...100))
        case .acZero, .temperature, .humidity, .lux:
            return
        }
        if dayType == 1 {
            onMinute += 60
            offMinute = min(offMinute, Int32(750 + r.next(in: 0...60)))
            if r.chance(perMille: 500) { offMinute = onMinute }
        }
    }

    // MARK: - Per-minute step

    /// Advances the column by one minute and returns its value in hundredths.
    ///
    /// - Parameters:
    ///   - minute: The minute of the day, 0–1439.
    ///   - cooling: Whether the floor's air conditioning is running (drives temperature and humidity).
    ///   - daylight: Daylight on a 0–360 scale.
    ///   - lightsOn: Whether the floor's lights are on (adds to lux).
    @inline(__always)
    mutating func step(
        minute: Int32,
        cooling: Bool,
        daylight: Int64,
        lightsOn: Bool,
        random r: inout SampleRandom
    )
        -> Int64
    {
        let scheduled = minute >= onMinute && minute < offMinute
        switch kind {
        case .light:
            if scheduled {
                if !wasOn || hold <= 0 {
                    // Banks of lights switched on and off by occupants.
                    let share = [100, 100, 100, 85, 70, 55][r.next(below: 6)]
                    target = onLevel * Int64(share) / 100
                    hold = Int32(r.next(in: 20...150))
                    value = target
                }
                hold -= 1
                if r.chance(perMille: 120) {
                    value = max(0, target + Int64(r.next(in: -2...2)))
                }
            } else {
                value = offLevel
                if offLevel > 0 && r.chance(perMille: 8) { value = offLevel + 1 }
            }
            wasOn = scheduled
            return value
        case .lightAllDay:
            let base = scheduled ? dayLevel : nightLevel
            if !wasOn && scheduled || wasOn && !scheduled { value = base }
            wasOn = scheduled
            value = Self.revert(value, toward: base, perMille: 120, maxStep: 3, scale: 40, random: &r)
            return value
        case .plug, .plugAllDay:
            if hold <= 0 || wasOn != scheduled {
                let base = scheduled ? dayLevel : nightLevel
                target = max(1, base * Int64(r.next(in: 75...125)) / 100)
                hold = Int32(r.next(in: 15...90))
            }
            hold -= 1
            wasOn = scheduled
            value = Self.revert(value, toward: target, perMille: 300, maxStep: 4, scale: 8, random: &r)
            return max(0, value)
        case .acLarge, .acAllDay, .acRare:
            let on = scheduled || kind == .acAllDay
            if !on {
                if value > offLevel + 40 {
                    value = value * 6 / 10  // spinning down
                } else {
                    value = offLevel
                    if offLevel > 2 && r.chance(perMille: 200) { value = offLevel + Int64(r.next(in: -3...3)) }
                }
                wasOn = false
                return max(0, value)
            }
            if hold <= 0 || !wasOn {
                // Compressor staging: a new load level every few minutes.
                target = onLevel * Int64(r.next(in: 35...115)) / 100
                hold = Int32(r.next(in: 4...25))
            }
            hold -= 1
            var goal = target
            if kind != .acAllDay && minute - onMinute < 35 { goal = onLevel * 125 / 100 }  // morning pull-down
            let diff = goal - value
            value += max(-300, min(300, diff / 2)) + Int64(r.next(in: -12...12))
            wasOn = true
            return max(0, value)
        case .acSmall:
            if !(scheduled || alwaysOn) {
                value = offLevel
                wasOn = false
                return value
            }
            if hold <= 0 || !wasOn {
                phase.toggle()
                hold = phase ? Int32(r.next(in: 6...25)) : Int32(r.next(in: 3...12))
                target = phase ? onLevel + Int64(r.next(in: -15...10)) : onLevel / 5
            }
            hold -= 1
            wasOn = true
            if r.chance(perMille: 400) || abs(value - target) > 12 {
                value = max(0, target + Int64(r.next(in: -4...4)))
            }
            return value
        case .acZero:
            return 0
        case .temperature:
            let goal = cooling ? dayLevel : nightLevel
            value = Self.revert(value, toward: goal, perMille: 420, maxStep: 4, scale: 60, random: &r)
            return value
        case .humidity:
            let goal = cooling ? dayLevel : nightLevel
            value = Self.revert(value, toward: goal, perMille: 500, maxStep: 5, scale: 120, random: &r)
            return min(10_000, max(0, value))
        case .lux:
            let lux = dayLevel * daylight / 360 + (lightsOn ? onLevel : 0)
            // Lux is kept as whole lux in `target` and written as hundredths.
            if r.chance(perMille: 250) {
                let diff = lux - target
                if diff > 0 {
                    target += diff > 6 ? 2 : 1
                } else if diff < 0 {
                    target -= diff < -6 ? 2 : 1
                } else if lux > 2 && r.chance(perMille: 300) {
                    target += r.chance(perMille: 500) ? 1 : -1
                }
            }
            target = max(0, min(92, target))
            value = target * 100
            return value
        }
    }

    /// A random walk step that leans towards `target` the further away it is.
    ///
    /// - Parameters:
    ///   - perMille: The chance of moving at all in one minute.
    ///   - maxStep: The largest step, in hundredths.
    ///   - scale: The distance (hundredths) at which the lean is strongest and steps start growing.
    @inline(__always)
    static func revert(
        _ value: Int64,
        toward target: Int64,
        perMille: Int,
        maxStep: Int64,
        scale: Int64,
        random r: inout SampleRandom
    ) -> Int64 {
        let bits = r.next()
        guard Int(bits & 1023) < perMille * 1024 / 1000 else { return value }
        let diff = target - value
        let lean = max(-450, min(450, diff * 450 / scale))
        let up = Int64((bits >> 10) & 1023) < 512 + lean
        let size = 1 + min(maxStep - 1, abs(diff) / (scale * 2))
        return up ? value + size : value - size
    }
}
