#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes deterministic CU-BEMS-shaped floor files: `<year>Floor<n>.csv`, header from ``FloorSchema``, one row per
/// minute, values that look like the real building.
///
/// Use ``write(toDirectory:)`` for files or ``render()`` for in-memory output (tests, benchmarks). The same
/// ``SampleConfiguration`` always yields byte-identical output. Rows are streamed through one reused ~1 MiB block
/// per file, so memory does not grow with the period.
package struct SampleGenerator: Sendable {
    /// What to generate.
    package let configuration: SampleConfiguration

    /// Creates a generator.
    ///
    /// - Parameter configuration: Period, floors, seed and byte-level options.
    package init(configuration: SampleConfiguration) {
        self.configuration = configuration
    }

    /// The file name of one floor and year, as in the real dataset: `2019Floor6.csv`.
    package static func fileName(year: Int, floor: Int) -> String {
        "\(year)Floor\(floor).csv"
    }

    /// Writes every file into `directory`, creating it and any missing parents.
    ///
    /// - Parameter directory: The output directory.
    /// - Returns: What was written.
    /// - Throws: ``SampleGeneratorError`` for a bad configuration or a failed create or write.
    package func write(toDirectory directory: String) throws(SampleGeneratorError) -> SampleSummary {
        try configuration.validate()
        try Self.createDirectories(directory)
        var files: [SampleFileSummary] = []
        for floor in configuration.floors {
            try generate(floor: floor) { name throws(SampleGeneratorError) in
                try SampleByteWriter.file(path: directory.hasSuffix("/") ? directory + name : directory + "/" + name)
            } finished: { summary, _ in
                files.append(summary)
            }
        }
        return SampleSummary(files: files)
    }

    /// `mkdir -p`: creates `path` and its missing parents with mode 0755.
    private static func createDirectories(_ path: String) throws(SampleGeneratorError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .io(path: prefix, operation: "create directory", errno: errno)
            }
            prefix += "/"
        }
    }

    /// Generates every file in memory.
    ///
    /// - Returns: Each file's summary and bytes, in the order ``write(toDirectory:)`` would write them.
    /// - Throws: ``SampleGeneratorError/invalidConfiguration(_:)``.
    package func render() throws(SampleGeneratorError) -> [(summary: SampleFileSummary, bytes: [UInt8])] {
        try configuration.validate()
        var files: [(summary: SampleFileSummary, bytes: [UInt8])] = []
        for floor in configuration.floors {
            try generate(floor: floor) { _ throws(SampleGeneratorError) in
                SampleByteWriter(destination: .memory)
            } finished: { summary, writer in
                files.append((summary, writer.memory))
            }
        }
        return files
    }

    // MARK: - One floor

    /// `HH:MM:00` for every minute of the day, 8 bytes each.
    private static let timeTable: [UInt8] = {
        var table: [UInt8] = []
        table.reserveCapacity(1440 * 8)
        for minute in 0..<1440 {
            let h = minute / 60
            let m = minute % 60
            table += [
                UInt8(48 + h / 10), UInt8(48 + h % 10), UInt8(ascii: ":"), UInt8(48 + m / 10), UInt8(48 + m % 10),
            ]
            table += Array(":00".utf8)
        }
        return table
    }()

    private func generate(
        floor: Int,
        open: (String) throws(SampleGeneratorError) -> SampleByteWriter,
        finished: (SampleFileSummary, SampleByteWriter) -> Void
    ) throws(SampleGeneratorError) {
        let config = configuration
        let seed = config.seed
        guard let headers = FloorSchema.dataColumns(floor: floor), let header = FloorSchema.header(floor: floor) else {
            throw .invalidConfiguration("floor \(floor) does not exist")
        }
        let eol = config.lineEnding.bytes
        let eol0 = eol[0]
        let eolCount = eol.count

        // Columns and dropout groups.
        var channelList: [SampleChannel] = []
        var groupList: [SampleDropoutGroup] = []
        var groupIndex: [SampleDropoutGroup.Category: Int] = [:]
        for (i, name) in headers.enumerated() {
            guard let sensor = SensorColumn(header: name, floor: floor) else {
                throw .invalidConfiguration("unexpected column \(name)")
            }
            var channel = SampleChannel(column: i, floor: floor, sensor: sensor)
            let category: SampleDropoutGroup.Category
            switch sensor.equipmentType {
            case .temperature, .humidity, .illuminance:
                category = .s1(zone: sensor.zone)
            case .ac where floor == 2 && channel.unit == 1:
                category = .floor2LargeAC
            case .ac where floor >= 3 && floor != 6 && sensor.zone == 1 && channel.unit >= 2:
                category = .zone1SplitAC
            case .ac:
                category = .power(zone: sensor.zone, acs: true)
            default:
                category = .power(zone: sensor.zone, acs: false)
            }
            if let g = groupIndex[category] {
                channel.group = g
            } else {
                var group = SampleDropoutGroup(category: category)
                if case .s1(let zone) = category {
                    group.gap = SampleEvents.maintenanceGap(floor: floor, zone: zone, seed: seed)
                    if floor == 2 && zone == 4 { group.emptyYear = 2018 }
                }
                groupIndex[category] = groupList.count
                channel.group = groupList.count
                groupList.append(group)
            }
            channelList.append(channel)
        }
        let powerColumns = channelList.filter { !$0.isS1 }.map(\.column)
        let temperatureColumns = channelList.filter { $0.equipment == .temperature }.map(\.column)

        let channels = UnsafeMutableBufferPointer<SampleChannel>.allocate(capacity: channelList.count)
        _ = channels.initialize(from: channelList)
        let groups = UnsafeMutableBufferPointer<SampleDropoutGroup>.allocate(capacity: groupList.count)
        _ = groups.initialize(from: groupList)
        defer {
            channels.deinitialize().deallocate()
            groups.deinitialize().deallocate()
        }
        let isS1 = channelList.map(\.isS1)

        var random = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, 0xF100)
        var end = config.endMinute
        if floor == 6, let last = config.floor6LastMinute { end = min(end, last + 1) }
        let maxRow = 20 + eolCount + headers.count * (1 + SampleNumberFormat.maxLength)

        var writer: SampleByteWriter?
        var currentYear = Int.min
        var rows = 0
        var groupsStarted = false
        var outage = [Bool](repeating: false, count: 1440)
        var prefix = [UInt8](repeating: 0, count: 11)
        var firstRow = [Int64](repeating: Int64.min, count: headers.count)

        func closeFile() throws(SampleGeneratorError) {
            guard let w = writer else { return }
            if floor == 6 && currentYear == 2019 && config.truncateFloor6 {
                try w.append([UInt8(ascii: "2")])
                rows += 1
            }
            try w.finish()
            let summary = SampleFileSummary(
                name: Self.fileName(year: currentYear, floor: floor),
                year: currentYear,
                floor: floor,
                rows: rows,
                bytes: w.totalBytes
            )
            finished(summary, w)
            writer = nil
        }

        var minute = config.firstMinute
        while minute < end {
            let day = SampleEvents.floorDiv(minute, 1440)
            let date = CivilDate(dayNumber: day)

            // New calendar year: new file, per-year parameters.
            if date.year != currentYear {
                try closeFile()
                currentYear = date.year
                rows = 0
                let w = try open(Self.fileName(year: date.year, floor: floor))
                if config.byteOrderMark { try w.append([0xEF, 0xBB, 0xBF]) }
                try w.append(Array(header.joined(separator: ",").utf8) + eol)
                writer = w
                for i in channels.indices { channels[i].configure(year: date.year, seed: seed) }
            }
            guard let w = writer else { break }

            // Day context.
            let dayType = SampleEvents.dayType(day: day, floor: floor, seed: seed)
            for i in channels.indices { channels[i].schedule(day: day, dayType: dayType, seed: seed) }
            var dayRandom = SampleRandom(hashing: Int(truncatingIfNeeded: seed), floor, day, 0xC001)
            let coolStart = dayType == 0 ? 0 : 460 + dayRandom.next(in: 0...20)
            let coolEnd = dayType == 0 ? 0 : (dayType == 1 ? 750 : 1060 + dayRandom.next(in: 0...60))
            let lightStart = dayType == 0 ? 0 : 450 + dayRandom.next(in: 0...30)
            let lightEnd = dayType == 0 ? 0 : (dayType == 1 ? 740 : 1050 + dayRandom.next(in: 0...90))
            for g in groups.indices {
                let oldRate = groups[g].rate
                groups[g].configure(floor: floor, date: date, day: day)
                if !groupsStarted || groups[g].rate != oldRate { groups[g].start(random: &random) }
            }
            groupsStarted = true
            for i in 0..<1440 { outage[i] = false }
            for o in SampleEvents.outages(day: day, floor: floor, seed: seed) {
                let lo = max(o.lowerBound - day * 1440, 0)
                let hi = min(o.upperBound - day * 1440, 1440)
                if lo < hi { for i in lo..<hi { outage[i] = true } }
            }
            let spikes = SampleEvents.spikes(
                day: day,
                floor: floor,
                seed: seed,
                powerColumns: powerColumns,
                temperatureColumns: temperatureColumns,
                headers: headers
            )
            var spikeIndex = 0
            var firstRowMinute = Int.min
            for i in firstRow.indices { firstRow[i] = Int64.min }
            if date.month == 1 && date.day == 1 || date.year == 2018 && date.month == 7 && date.day == 1 {
                let known = SampleEvents.realFirstRow(year: date.year, floor: floor)
                if !known.isEmpty {
                    firstRowMinute = day * 1440
                    for (name, value) in known {
                        if let c = headers.firstIndex(of: name) { firstRow[c] = value }
                    }
                }
            }
            Self.writeDate(date, into: &prefix)

            let dayEnd = min(end, (day + 1) * 1440)
            try prefix.withUnsafeBufferPointer { prefixBytes throws(SampleGeneratorError) in
                try Self.timeTable.withUnsafeBufferPointer { times throws(SampleGeneratorError) in
                    for m in minute..<dayEnd {
                        try w.reserve(maxRow)
                        let p = w.cursor
                        p.update(from: prefixBytes.baseAddress!, count: 11)
                        let mod = m - day * 1440
                        (p + 11).update(from: times.baseAddress! + mod * 8, count: 8)
                        var n = 19
                        let allEmpty = outage[mod] && m != firstRowMinute
                        for g in groups.indices { groups[g].advance(random: &random) }
                        var spikeColumn = -1
                        var spikeValue: Int64 = 0
                        while spikeIndex < spikes.count && spikes[spikeIndex].minute <= m {
                            if spikes[spikeIndex].minute == m {
                                spikeColumn = spikes[spikeIndex].column
                                spikeValue = spikes[spikeIndex].value
                            }
                            spikeIndex += 1
                        }
                        let cooling = mod >= coolStart && mod < coolEnd
                        let lightsOn = mod >= lightStart && mod < lightEnd
                        let daylight = SampleEvents.daylight(minute: mod)
                        let minuteOfDay = Int32(mod)
                        for c in channels.indices {
                            var value = channels[c].step(
                                minute: minuteOfDay,
                                cooling: cooling,
                                daylight: daylight,
                                lightsOn: lightsOn,
                                random: &random
                            )
                            p[n] = UInt8(ascii: ",")
                            n += 1
                            if allEmpty { continue }
                            var present = groups[channels[c].group].isPresent(at: m)
                            if m == firstRowMinute && firstRow[c] != Int64.min {
                                // The real file's first reading of this column.
                                value = firstRow[c]
                                channels[c].value = value
                                if channels[c].kind == .lux { channels[c].target = value / 100 }
                                present = true
                            }
                            if c == spikeColumn && channels[c].kind != .acZero {
                                // A power spike is a reading; a temperature anomaly only shows when the sensor reports.
                                if !isS1[c] { present = true }
                                value = spikeValue
                            }
                            if present {
                                n += SampleNumberFormat.write(
                                    value,
                                    wholeAsInteger: channels[c].wholeAsInteger,
                                    to: p + n
                                )
                            }
                        }
                        p[n] = eol0
                        if eolCount == 2 { p[n + 1] = 0x0A }
                        n += eolCount
                        w.commit(n)
                    }
                }
            }
            rows += dayEnd - minute
            minute = dayEnd
        }
        try closeFile()
    }

    /// Writes `YYYY-MM-DD ` (11 bytes).
    private static func writeDate(_ date: CivilDate, into out: inout [UInt8]) {
        var y = date.year
        for i in stride(from: 3, through: 0, by: -1) {
            out[i] = UInt8(48 + y % 10)
            y /= 10
        }
        out[4] = UInt8(ascii: "-")
        out[5] = UInt8(48 + date.month / 10)
        out[6] = UInt8(48 + date.month % 10)
        out[7] = UInt8(ascii: "-")
        out[8] = UInt8(48 + date.day / 10)
        out[9] = UInt8(48 + date.day % 10)
        out[10] = UInt8(ascii: " ")
    }
}
