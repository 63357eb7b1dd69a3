/// The in-batch half of deduplication: merges the normalize chunks of one (floor, day) group into one list of
/// readings with a single reading per key (sensor id, timestamp).
///
/// Every input chunk is already in canonical order (sensor index, then timestamp, stable), so each sensor's readings
/// form one sorted run per chunk. The merge maps every chunk's sensor dictionary onto one sorted group dictionary and,
/// sensor by sensor, merges the runs of the chunks (a k-way merge over usually one or two runs). No dictionary keyed by
/// reading is built: the work is O(n · k) with k the number of chunks holding a sensor, memory is the output arrays.
///
/// Among readings with the same key, the *later* one wins: the higher ``MergeInput/sourceIndex`` (the input's
/// position in the normalize manifest), then the higher ``MergeInput/sequence``, then the later row of the chunk.
/// Dropped readings equal to the kept one (value and status) are counted as duplicates; the others are conflicts,
/// each reported against the reading finally kept.
package enum BatchMerge {
    /// Merges the chunks of one group.
    ///
    /// The result does not depend on the order of `inputs`: they are sorted by (``MergeInput/sourceIndex``,
    /// ``MergeInput/sequence``) first.
    ///
    /// - Parameter inputs: The decoded chunks, each in canonical order (as ``ChunkReader/decode(_:limits:)`` returns).
    /// - Returns: One reading per key, sensor-major with sensors sorted by id, timestamps ascending per sensor.
    package static func merge(_ inputs: [MergeInput]) -> MergedGroup {
        let ordered = inputs.enumerated().sorted { a, b in
            (a.element.sourceIndex, a.element.sequence, a.offset) < (
                b.element.sourceIndex, b.element.sequence, b.offset
            )
        }.map(\.element)

        // The group dictionary: every sensor id of every chunk, sorted.
        var allIDs = Set<String>()
        for input in ordered { allIDs.formUnion(input.data.sensorIDs) }
        let sensorIDs = allIDs.sorted()
        var groupIndex: [String: Int] = [:]
        groupIndex.reserveCapacity(sensorIDs.count)
        for (i, id) in sensorIDs.enumerated() { groupIndex[id] = i }

        // Per group sensor, the runs (input, start, end) in priority order.
        var runs = [[Run]](repeating: [], count: sensorIDs.count)
        var readingsIn = 0
        for (order, input) in ordered.enumerated() {
            let data = input.data
            readingsIn += data.count
            var start = 0
            data.sensorIndexes.withUnsafeBufferPointer { sensors in
                while start < sensors.count {
                    let local = sensors[start]
                    var end = start + 1
                    while end < sensors.count, sensors[end] == local { end += 1 }
                    runs[groupIndex[data.sensorIDs[Int(local)]]!].append(Run(input: order, start: start, end: end))
                    start = end
                }
            }
        }

        var output = MergedGroup(sensorIDs: sensorIDs)
        output.readingsIn = readingsIn
        output.timestamps.reserveCapacity(readingsIn)
        output.values.reserveCapacity(readingsIn)
        output.statuses.reserveCapacity(readingsIn)
        output.sensorStarts.reserveCapacity(sensorIDs.count + 1)
        var state = MergeState()
        for g in sensorIDs.indices {
            output.sensorStarts.append(output.timestamps.count)
            mergeSensor(g, runs: runs[g], inputs: ordered, into: &output, state: &state)
        }
        output.sensorStarts.append(output.timestamps.count)
        return output
    }

    // MARK: - Merging one sensor

    struct Run {
        var input: Int
        var start: Int
        var end: Int
    }

    /// Readings of the current key that lost to a later one, resolved when the key changes.
    struct MergeState {
        var dropped: [(value: Int64, status: ReadingStatus, input: Int)] = []
        var keptInput = 0
    }

    private static func mergeSensor(
        _ g: Int, runs: [Run], inputs: [MergeInput], into out: inout MergedGroup, state: inout MergeState
    ) {
        let first = out.timestamps.count
        if runs.count == 1 {
            // Fast path: one chunk holds this sensor; only duplicates inside the chunk need collapsing.
            let run = runs[0]
            let data = inputs[run.input].data
            data.timestamps.withUnsafeBufferPointer { times in
                data.values.withUnsafeBufferPointer { values in
                    data.statuses.withUnsafeBufferPointer { statuses in
                        for row in run.start..<run.end {
                            emit(
                                g, times[row], values[row], statuses[row], input: run.input, first: first,
                                inputs: inputs,
                                into: &out, state: &state)
                        }
                    }
                }
            }
        } else {
            var heads = runs.map(\.start)
            while true {
                // The run whose head has the smallest timestamp; ties go to the earliest input, so the later input
                // is emitted last and wins.
                var best = -1
                var bestTime = Int64.max
                for r in runs.indices where heads[r] < runs[r].end {
                    let t = inputs[runs[r].input].data.timestamps[heads[r]]
                    if best < 0 || t < bestTime {
                        best = r
                        bestTime = t
                    }
                }
                if best < 0 { break }
                let run = runs[best]
                let data = inputs[run.input].data
                let row = heads[best]
                emit(
                    g, bestTime, data.values[row], data.statuses[row], input: run.input, first: first, inputs: inputs,
                    into: &out, state: &state)
                heads[best] += 1
            }
        }
        resolve(g, into: &out, state: &state, inputs: inputs)
    }

    @inline(__always)
    private static func emit(
        _ g: Int, _ time: Int64, _ value: Int64, _ status: ReadingStatus, input: Int, first: Int,
        inputs: [MergeInput], into out: inout MergedGroup, state: inout MergeState
    ) {
        let last = out.timestamps.count - 1
        if last >= first, out.timestamps[last] == time {
            // Same key: the new reading is later, so it replaces the kept one.
            state.dropped.append((out.values[last], out.statuses[last], state.keptInput))
            out.values[last] = value
            out.statuses[last] = status
            state.keptInput = input
            return
        }
        if !state.dropped.isEmpty { resolve(g, into: &out, state: &state, inputs: inputs) }
        out.timestamps.append(time)
        out.values.append(value)
        out.statuses.append(status)
        state.keptInput = input
    }

    /// Counts the readings dropped for the last emitted key against the one kept.
    private static func resolve(_ g: Int, into out: inout MergedGroup, state: inout MergeState, inputs: [MergeInput]) {
        guard !state.dropped.isEmpty else { return }
        let last = out.timestamps.count - 1
        let keptValue = out.values[last]
        let keptStatus = out.statuses[last]
        for d in state.dropped {
            if d.value == keptValue && d.status == keptStatus {
                out.duplicatesDropped += 1
            } else {
                out.conflicts.append(
                    MergeConflict(
                        sensorID: out.sensorIDs[g], timestamp: out.timestamps[last],
                        keptValue: keptValue, keptStatus: keptStatus, keptSource: inputs[state.keptInput].source,
                        droppedValue: d.value, droppedStatus: d.status, droppedSource: inputs[d.input].source))
            }
        }
        state.dropped.removeAll(keepingCapacity: true)
    }
}

/// One decoded normalize chunk of a group, with its place in the source order.
package struct MergeInput: Sendable {
    /// The readings, in canonical order.
    package var data: ChunkData
    /// The position of the chunk's input file in the normalize manifest's input order; higher wins.
    package var sourceIndex: Int
    /// The chunk's sequence number within its source (`-<seq>.bemc`); higher wins among equal sources.
    package var sequence: Int
    /// The input's name, for the conflict report.
    package var source: String

    /// Creates an input.
    package init(data: ChunkData, sourceIndex: Int, sequence: Int, source: String) {
        self.data = data
        self.sourceIndex = sourceIndex
        self.sequence = sequence
        self.source = source
    }
}

/// The readings of one group after the in-batch merge: one reading per (sensor id, timestamp).
package struct MergedGroup: Sendable {
    /// The group's sensor ids, sorted.
    package var sensorIDs: [String]
    /// Rows of sensor `s` are `sensorStarts[s] ..< sensorStarts[s + 1]` (`sensorIDs.count + 1` entries).
    package var sensorStarts: [Int] = []
    /// Unix seconds (UTC), ascending within each sensor.
    package var timestamps: [Int64] = []
    /// Scaled values (×10⁴).
    package var values: [Int64] = []
    /// Statuses.
    package var statuses: [ReadingStatus] = []
    /// Readings in the input chunks.
    package var readingsIn = 0
    /// Dropped readings identical (value and status) to the one kept.
    package var duplicatesDropped = 0
    /// Dropped readings that differed from the one kept.
    package var conflicts: [MergeConflict] = []

    /// An empty group with a sensor dictionary.
    package init(sensorIDs: [String]) {
        self.sensorIDs = sensorIDs
    }

    /// The number of readings kept.
    package var count: Int { timestamps.count }

    /// The rows of sensor `s`.
    package func rows(ofSensor s: Int) -> Range<Int> { sensorStarts[s]..<sensorStarts[s + 1] }
}

/// Two readings of the same key with different values or statuses; the later source's was kept.
package struct MergeConflict: Equatable, Sendable {
    /// The sensor id.
    package var sensorID: String
    /// Unix seconds (UTC).
    package var timestamp: Int64
    /// The value kept (×10⁴).
    package var keptValue: Int64
    /// The status kept.
    package var keptStatus: ReadingStatus
    /// The input the kept reading came from.
    package var keptSource: String
    /// The value dropped (×10⁴).
    package var droppedValue: Int64
    /// The status dropped.
    package var droppedStatus: ReadingStatus
    /// The input the dropped reading came from.
    package var droppedSource: String

    /// Creates a conflict record.
    package init(
        sensorID: String, timestamp: Int64, keptValue: Int64, keptStatus: ReadingStatus, keptSource: String,
        droppedValue: Int64, droppedStatus: ReadingStatus, droppedSource: String
    ) {
        self.sensorID = sensorID
        self.timestamp = timestamp
        self.keptValue = keptValue
        self.keptStatus = keptStatus
        self.keptSource = keptSource
        self.droppedValue = droppedValue
        self.droppedStatus = droppedStatus
        self.droppedSource = droppedSource
    }

    /// The conflict as one JSON object (no newline), values as exact decimal strings, for `conflicts.jsonl`:
    /// `{"sensor_id":…,"timestamp":"2019-03-04T00:01:00Z","unix":…,"kept":{"value":"1.2500","status":"normal",
    /// "source":…},"dropped":{…}}`.
    package var jsonLine: String {
        func side(_ value: Int64, _ status: ReadingStatus, _ source: String) -> String {
            "{\"value\":\"\(ScaledDecimal.format(value))\",\"status\":\"\(status.label)\",\"source\":\(JSONText.quoted(source))}"
        }
        return "{\"sensor_id\":\(JSONText.quoted(sensorID)),\"timestamp\":\"\(JSONText.isoUTC(timestamp))\","
            + "\"unix\":\(timestamp),\"kept\":\(side(keptValue, keptStatus, keptSource)),"
            + "\"dropped\":\(side(droppedValue, droppedStatus, droppedSource))}"
    }
}

/// Small JSON text helpers for hand-written JSON lines.
enum JSONText {
    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds, computed with integer civil-date arithmetic.
    static func isoUTC(_ unix: Int64) -> String {
        let days = unix >= 0 ? unix / 86_400 : (unix - 86_399) / 86_400
        let secs = unix - days * 86_400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var year = String(y)
        while year.count < 4 { year = "0" + year }
        return "\(year)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }
}
