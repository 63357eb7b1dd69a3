/// What the dedupe stage decided for a reading: insert a new row or update an existing one.
package enum ChunkAction: UInt8, Sendable, CaseIterable {
    /// The reading is new: `INSERT`.
    case insert = 0
    /// The reading replaces a different stored value: `UPDATE`; the previous value is kept for rollback.
    case update = 1
}

/// The readings of one chunk, column by column (structure of arrays).
///
/// Row `i` is (`sensorIDs[sensorIndexes[i]]`, `timestamps[i]`, `values[i]`, `statuses[i]`) plus the optional
/// dedupe columns. All present columns have ``count`` entries. ``ChunkWriter`` stores rows in the canonical order
/// (sensor index, then timestamp, stable), so a decoded chunk equals ``canonicalized()`` of the written one.
package struct ChunkData: Equatable, Sendable {
    /// The dictionary of sensor ids, for example `f3_z1_ac4`; rows refer to it by index. Ids must be unique.
    package var sensorIDs: [String]
    /// Reading times as Unix epoch seconds, UTC.
    package var timestamps: [Int64]
    /// For each row, an index into ``sensorIDs``.
    package var sensorIndexes: [UInt32]
    /// Reading values scaled by 10^4 (`DECIMAL(10,4)`), exact; within ±``ScaledDecimal/maxMagnitude``.
    package var values: [Int64]
    /// The quality label of each reading.
    package var statuses: [ReadingStatus]
    /// Optional column written by dedupe: what to do with each reading.
    package var actions: [ChunkAction]?
    /// Optional column: the stored value before an update (`nil` for inserts), for rollback.
    package var previousValues: [Int64?]?
    /// Optional column: the stored status before an update (`nil` for inserts), for rollback.
    package var previousStatuses: [ReadingStatus?]?
    /// Free-form string metadata, for example `floor`, `day`, `source`, `stage`, `run`.
    package var metadata: [String: String]

    /// The number of readings (rows).
    package var count: Int { timestamps.count }

    /// Creates a chunk from whole columns; the writer checks that their lengths agree.
    package init(
        sensorIDs: [String] = [],
        timestamps: [Int64] = [],
        sensorIndexes: [UInt32] = [],
        values: [Int64] = [],
        statuses: [ReadingStatus] = [],
        actions: [ChunkAction]? = nil,
        previousValues: [Int64?]? = nil,
        previousStatuses: [ReadingStatus?]? = nil,
        metadata: [String: String] = [:]
    ) {
        self.sensorIDs = sensorIDs
        self.timestamps = timestamps
        self.sensorIndexes = sensorIndexes
        self.values = values
        self.statuses = statuses
        self.actions = actions
        self.previousValues = previousValues
        self.previousStatuses = previousStatuses
        self.metadata = metadata
    }

    // MARK: - Building

    /// Returns the index of `sensorID` in ``sensorIDs``, appending it when it is not there yet.
    ///
    /// The lookup is linear; call it once per column, not once per reading.
    package mutating func addSensor(_ sensorID: String) -> UInt32 {
        if let index = sensorIDs.firstIndex(of: sensorID) {
            return UInt32(index)
        }
        sensorIDs.append(sensorID)
        return UInt32(sensorIDs.count - 1)
    }

    /// Reserves room for `rows` more readings in every present column.
    package mutating func reserveCapacity(_ rows: Int) {
        let total = count + rows
        timestamps.reserveCapacity(total)
        sensorIndexes.reserveCapacity(total)
        values.reserveCapacity(total)
        statuses.reserveCapacity(total)
        actions?.reserveCapacity(total)
        previousValues?.reserveCapacity(total)
        previousStatuses?.reserveCapacity(total)
    }

    /// Appends one reading (no dedupe columns).
    ///
    /// - Important: If the chunk already has the optional columns, they get `.insert`/`nil` for this row.
    package mutating func append(sensorIndex: UInt32, timestamp: Int64, value: Int64, status: ReadingStatus) {
        sensorIndexes.append(sensorIndex)
        timestamps.append(timestamp)
        values.append(value)
        statuses.append(status)
        actions?.append(.insert)
        previousValues?.append(nil)
        previousStatuses?.append(nil)
    }

    /// Appends one reading with its dedupe decision, creating the optional columns on first use.
    ///
    /// Rows appended before the optional columns existed count as inserts with no previous value.
    package mutating func append(
        sensorIndex: UInt32, timestamp: Int64, value: Int64, status: ReadingStatus,
        action: ChunkAction, previousValue: Int64?, previousStatus: ReadingStatus?
    ) {
        let existing = count
        sensorIndexes.append(sensorIndex)
        timestamps.append(timestamp)
        values.append(value)
        statuses.append(status)
        if actions == nil { actions = [ChunkAction](repeating: .insert, count: existing) }
        if previousValues == nil { previousValues = [Int64?](repeating: nil, count: existing) }
        if previousStatuses == nil { previousStatuses = [ReadingStatus?](repeating: nil, count: existing) }
        actions!.append(action)
        previousValues!.append(previousValue)
        previousStatuses!.append(previousStatus)
    }

    // MARK: - Canonical order

    /// The same readings in canonical order: by sensor index, then timestamp; equal keys keep input order.
    ///
    /// This is the order ``ChunkReader/decode(_:)`` returns. Sensor ids and metadata are unchanged.
    /// - Precondition: every sensor index is below `sensorIDs.count`.
    package func canonicalized() -> ChunkData {
        guard
            let permutation = ChunkOrdering.permutation(
                sensorIndexes: sensorIndexes, timestamps: timestamps, sensorCount: sensorIDs.count)
        else { return self }
        var result = self
        result.timestamps = permutation.map { timestamps[Int($0)] }
        result.sensorIndexes = permutation.map { sensorIndexes[Int($0)] }
        result.values = permutation.map { values[Int($0)] }
        result.statuses = permutation.map { statuses[Int($0)] }
        if let actions { result.actions = permutation.map { actions[Int($0)] } }
        if let previousValues { result.previousValues = permutation.map { previousValues[Int($0)] } }
        if let previousStatuses { result.previousStatuses = permutation.map { previousStatuses[Int($0)] } }
        return result
    }
}
