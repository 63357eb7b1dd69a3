/// Exact per-sensor statistics stored in a chunk header; integrity checks compare them with the database.
package struct SensorStats: Equatable, Sendable, Codable {
    /// The sensor id, for example `f3_z1_ac4`.
    package var sensorID: String
    /// The number of readings of this sensor in the chunk.
    package var count: Int
    /// The exact sum of the scaled values (10^-4 units).
    package var valueSum: Int64
    /// The earliest timestamp (Unix seconds); `0` when ``count`` is `0`.
    package var minTimestamp: Int64
    /// The latest timestamp (Unix seconds); `0` when ``count`` is `0`.
    package var maxTimestamp: Int64

    /// Creates statistics.
    package init(sensorID: String, count: Int, valueSum: Int64, minTimestamp: Int64, maxTimestamp: Int64) {
        self.sensorID = sensorID
        self.count = count
        self.valueSum = valueSum
        self.minTimestamp = minTimestamp
        self.maxTimestamp = maxTimestamp
    }
}

/// One entry of a chunk's column directory, as stored.
package struct ChunkColumnInfo: Equatable, Sendable {
    /// The column name, for example `value`.
    package var name: String
    /// The encoding id (see `FORMAT.md` §6).
    package var encoding: UInt8
    /// The compression id: `0` none, `1` zstd.
    package var compression: UInt8
    /// The directory flags; bit 0 set means a reader that does not know this column must refuse the chunk.
    package var flags: UInt8
    /// The number of rows the column decodes to.
    package var rowCount: Int
    /// The length of the encoded column before compression.
    package var uncompressedLength: Int
    /// The length of the stored block.
    package var compressedLength: Int
    /// The offset of the stored block from the start of the chunk.
    package var offset: Int

    /// Creates a directory entry.
    package init(
        name: String, encoding: UInt8, compression: UInt8, flags: UInt8, rowCount: Int, uncompressedLength: Int,
        compressedLength: Int, offset: Int
    ) {
        self.name = name
        self.encoding = encoding
        self.compression = compression
        self.flags = flags
        self.rowCount = rowCount
        self.uncompressedLength = uncompressedLength
        self.compressedLength = compressedLength
        self.offset = offset
    }
}

/// The decoded header of a chunk: row count, time range, exact per-sensor statistics, metadata and directory.
package struct ChunkHeader: Equatable, Sendable {
    /// The format version of the chunk (currently ``ChunkFormat/version``).
    package var formatVersion: UInt16
    /// The number of readings.
    package var rowCount: Int
    /// The earliest timestamp of any reading; `0` for an empty chunk.
    package var minTimestamp: Int64
    /// The latest timestamp of any reading; `0` for an empty chunk.
    package var maxTimestamp: Int64
    /// Statistics for every sensor of the dictionary, in dictionary order (sensors without readings included).
    package var sensors: [SensorStats]
    /// The string metadata map.
    package var metadata: [String: String]
    /// Whether the chunk has the `action` column.
    package var hasActions: Bool
    /// Whether the chunk has the `previous_value` column.
    package var hasPreviousValues: Bool
    /// Whether the chunk has the `previous_status` column.
    package var hasPreviousStatuses: Bool
    /// The column directory, including columns this reader does not know.
    package var columns: [ChunkColumnInfo]
    /// The total length of the chunk in bytes.
    package var totalLength: Int

    /// Creates a header; normally obtained from ``ChunkReader/readHeader(_:verifyChecksum:limits:)``.
    package init(
        formatVersion: UInt16, rowCount: Int, minTimestamp: Int64, maxTimestamp: Int64, sensors: [SensorStats],
        metadata: [String: String], hasActions: Bool, hasPreviousValues: Bool, hasPreviousStatuses: Bool,
        columns: [ChunkColumnInfo], totalLength: Int
    ) {
        self.formatVersion = formatVersion
        self.rowCount = rowCount
        self.minTimestamp = minTimestamp
        self.maxTimestamp = maxTimestamp
        self.sensors = sensors
        self.metadata = metadata
        self.hasActions = hasActions
        self.hasPreviousValues = hasPreviousValues
        self.hasPreviousStatuses = hasPreviousStatuses
        self.columns = columns
        self.totalLength = totalLength
    }

    /// The sum of all values, exact.
    package var valueSum: Int64 {
        sensors.reduce(0) { $0 &+ $1.valueSum }
    }
}
