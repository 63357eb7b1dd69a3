/// The database half of deduplication: classifies a merged group's readings as insert, update or skip.
package enum GroupClassifier {
    /// The part of a group that needs a lookup: sensors with a reading inside their stored `[min, max]` window.
    package struct Overlap: Sendable, Equatable {
        /// Indexes into the group's ``MergedGroup/sensorIDs``.
        package var sensors: [Int]
        /// The smallest and largest timestamp of those readings (Unix seconds).
        package var from: Int64
        /// Through this timestamp (Unix seconds).
        package var to: Int64
    }

    /// The readings to write for a group, with their counts.
    package struct Classified: Sendable {
        /// Inserts and updates only, with the `action`, `previousValues` and `previousStatuses` columns.
        package var data: ChunkData
        /// Readings to insert.
        package var inserts = 0
        /// Readings to update.
        package var updates = 0
        /// Readings identical to the stored row.
        package var skips = 0
    }

    /// Finds the sensors whose readings may collide with stored rows.
    ///
    /// - Returns: `nil` when every reading lies outside its sensor's watermark window (pure inserts, no lookup).
    package static func overlap(_ group: MergedGroup, watermarks: [String: SensorWatermark]) -> Overlap? {
        var sensors: [Int] = []
        var from = Int64.max
        var to = Int64.min
        for s in group.sensorIDs.indices {
            guard let mark = watermarks[group.sensorIDs[s]] else { continue }
            let rows = group.rows(ofSensor: s)
            guard !rows.isEmpty else { continue }
            // First reading at or after the window's start (timestamps ascend within the sensor).
            var lo = rows.lowerBound
            var hi = rows.upperBound
            while lo < hi {
                let mid = (lo + hi) / 2
                if group.timestamps[mid] < mark.min { lo = mid + 1 } else { hi = mid }
            }
            guard lo < rows.upperBound, group.timestamps[lo] <= mark.max else { continue }
            // Last reading at or before the window's end.
            var a = lo
            var b = rows.upperBound
            while a < b {
                let mid = (a + b) / 2
                if group.timestamps[mid] <= mark.max { a = mid + 1 } else { b = mid }
            }
            sensors.append(s)
            from = min(from, group.timestamps[lo])
            to = max(to, group.timestamps[a - 1])
        }
        return sensors.isEmpty ? nil : Overlap(sensors: sensors, from: from, to: to)
    }

    /// Classifies every reading of a group against the stored rows.
    ///
    /// - Parameters:
    ///   - group: The merged readings.
    ///   - existing: The stored rows of the overlapping sensors (``Overlap``); sensors absent from it are inserts.
    ///   - metadata: The output chunk's metadata.
    /// - Returns: The inserts and updates in canonical order, and the counts.
    package static func classify(
        _ group: MergedGroup, existing: ExistingRows, metadata: [String: String]
    ) -> Classified {
        var out = Classified(data: ChunkData(metadata: metadata))
        var data = ChunkData(metadata: metadata)
        data.reserveCapacity(group.count)
        var actions: [ChunkAction] = []
        var previousValues: [Int64?] = []
        var previousStatuses: [ReadingStatus?] = []
        actions.reserveCapacity(group.count)
        previousValues.reserveCapacity(group.count)
        previousStatuses.reserveCapacity(group.count)
        for s in group.sensorIDs.indices {
            let rows = group.rows(ofSensor: s)
            if rows.isEmpty { continue }
            let index = UInt32(data.sensorIDs.count)
            let before = data.count
            if let stored = existing.bySensor[group.sensorIDs[s]] {
                var j = 0
                for row in rows {
                    let t = group.timestamps[row]
                    while j < stored.timestamps.count, stored.timestamps[j] < t { j += 1 }
                    let value = group.values[row]
                    let status = group.statuses[row]
                    if j < stored.timestamps.count, stored.timestamps[j] == t {
                        if stored.values[j] == value && stored.statuses[j] == status {
                            out.skips += 1
                            continue
                        }
                        appendRow(&data, index, t, value, status)
                        actions.append(.update)
                        previousValues.append(stored.values[j])
                        previousStatuses.append(stored.statuses[j])
                        out.updates += 1
                    } else {
                        appendRow(&data, index, t, value, status)
                        actions.append(.insert)
                        previousValues.append(nil)
                        previousStatuses.append(nil)
                        out.inserts += 1
                    }
                }
            } else {
                let n = rows.count
                data.timestamps.append(contentsOf: group.timestamps[rows])
                data.values.append(contentsOf: group.values[rows])
                data.statuses.append(contentsOf: group.statuses[rows])
                data.sensorIndexes.append(contentsOf: repeatElement(index, count: n))
                actions.append(contentsOf: repeatElement(.insert, count: n))
                previousValues.append(contentsOf: repeatElement(nil, count: n))
                previousStatuses.append(contentsOf: repeatElement(nil, count: n))
                out.inserts += n
            }
            if data.count > before { data.sensorIDs.append(group.sensorIDs[s]) }
        }
        data.actions = actions
        data.previousValues = previousValues
        data.previousStatuses = previousStatuses
        out.data = data
        return out
    }

    @inline(__always)
    private static func appendRow(_ data: inout ChunkData, _ sensor: UInt32, _ t: Int64, _ v: Int64, _ s: ReadingStatus)
    {
        data.sensorIndexes.append(sensor)
        data.timestamps.append(t)
        data.values.append(v)
        data.statuses.append(s)
    }
}
