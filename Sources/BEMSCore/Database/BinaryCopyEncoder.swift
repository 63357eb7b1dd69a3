/// Builds PostgreSQL binary COPY data (`COPY … FROM STDIN (FORMAT binary)`).
///
/// The format (PostgreSQL docs, `sql-copy.html`, "Binary Format"), all integers big-endian:
///
/// | Part | Bytes |
/// |---|---|
/// | header | `PGCOPY\n\377\r\n\0`, Int32 flags `0`, Int32 header-extension length `0` |
/// | each tuple | Int16 field count, then per field Int32 length (`-1` = NULL) and the value bytes |
/// | trailer | Int16 `-1` |
///
/// The encoder owns one growable output buffer that is reused across flushes; the row loop only stores integers
/// and copies pre-encoded byte strings, never builds a `String`. Typical use:
///
/// ```swift
/// var encoder = BinaryCopyEncoder()
/// var copy = try db.copyIn(BinaryCopyEncoder.copyReadingsSQL(table: "sensor_readings"))
/// encoder.appendHeader()
/// for row in rows {
///     encoder.appendReading(unixSeconds: row.t, value: row.v, status: row.status, sensor: fields[row.sensor])
///     try encoder.flushIfNeeded(to: &copy)
/// }
/// encoder.appendTrailer()
/// try encoder.flush(to: &copy)
/// try copy.finish()
/// ```
package struct BinaryCopyEncoder: ~Copyable {
    /// The 11-byte signature that starts every binary COPY stream.
    package static let signature: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00]
    /// The size at which ``flushIfNeeded(to:)`` sends the buffer: 64 KiB.
    package static let defaultFlushThreshold = 64 * 1024
    /// Seconds from the Unix epoch (1970-01-01 UTC) to the PostgreSQL epoch (2000-01-01 UTC).
    package static let postgresEpochUnixSeconds: Int64 = 946_684_800

    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    /// The number of bytes buffered and not yet flushed.
    package private(set) var count: Int = 0
    /// The buffer size at which ``flushIfNeeded(to:)`` flushes.
    package let flushThreshold: Int

    /// Creates an encoder with an empty buffer.
    ///
    /// - Parameter flushThreshold: The buffered size at which ``flushIfNeeded(to:)`` sends data; at least 1.
    package init(flushThreshold: Int = BinaryCopyEncoder.defaultFlushThreshold) {
        precondition(flushThreshold > 0, "flushThreshold must be positive")
        self.flushThreshold = flushThreshold
        // Room for one more typical row past the threshold, so the row loop rarely grows the buffer.
        self.capacity = flushThreshold + 4096
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    // MARK: - Stream framing

    /// Appends the stream header: signature, flags `0`, extension length `0` (19 bytes).
    package mutating func appendHeader() {
        reserve(19)
        for (i, byte) in Self.signature.enumerated() {
            storage.storeBytes(of: byte, toByteOffset: count + i, as: UInt8.self)
        }
        count += 11
        storeInt32(0)
        storeInt32(0)
    }

    /// Appends the stream trailer, Int16 `-1`.
    package mutating func appendTrailer() {
        reserve(2)
        storeInt16(-1)
    }

    /// Starts a tuple: appends its Int16 field count. Append exactly that many fields next.
    @inline(__always)
    package mutating func appendTupleHeader(fieldCount: Int16) {
        reserve(2)
        storeInt16(fieldCount)
    }

    // MARK: - Fields

    /// Appends a NULL field (length `-1`, no bytes).
    @inline(__always)
    package mutating func appendNull() {
        reserve(4)
        storeInt32(-1)
    }

    /// Appends an `int2` field.
    @inline(__always)
    package mutating func appendInt16(_ value: Int16) {
        reserve(6)
        storeInt32(2)
        storeInt16(value)
    }

    /// Appends an `int4` field.
    @inline(__always)
    package mutating func appendInt32(_ value: Int32) {
        reserve(8)
        storeInt32(4)
        storeInt32(value)
    }

    /// Appends an `int8` field.
    @inline(__always)
    package mutating func appendInt64(_ value: Int64) {
        reserve(12)
        storeInt32(8)
        storeInt64(value)
    }

    /// Appends a `timestamptz` (or `timestamp`) field from whole seconds since the Unix epoch.
    ///
    /// The wire value is Int64 microseconds since 2000-01-01 00:00:00 UTC, `(s − 946 684 800) × 1 000 000`,
    /// computed in integers.
    ///
    /// - Precondition: The result fits in `Int64` (about ±292 000 years); larger values trap.
    @inline(__always)
    package mutating func appendTimestamptz(unixSeconds: Int64) {
        appendInt64((unixSeconds - Self.postgresEpochUnixSeconds) * 1_000_000)
    }

    /// Appends a `timestamptz` field from microseconds since the Unix epoch.
    @inline(__always)
    package mutating func appendTimestamptz(unixMicroseconds: Int64) {
        appendInt64(unixMicroseconds - Self.postgresEpochUnixSeconds * 1_000_000)
    }

    /// Appends a `text`/`varchar` field with the UTF-8 bytes of `value`.
    ///
    /// Convenient but not for the row loop: pre-encode repeated strings with ``EncodedField/text(_:)`` and use
    /// ``append(_:)``.
    package mutating func appendText(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            appendBytesField(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Appends a field whose value is `bytes` (length prefix included by this call), for `bytea` or pre-encoded text.
    package mutating func appendBytesField(_ bytes: UnsafeRawBufferPointer) {
        reserve(4 + bytes.count)
        storeInt32(Int32(bytes.count))
        storeRaw(bytes)
    }

    /// Appends pre-encoded fields (length prefixes included), a single `memcpy`.
    @inline(__always)
    package mutating func append(_ field: EncodedField) {
        field.bytes.withUnsafeBytes { raw in
            reserve(raw.count)
            storeRaw(raw)
        }
    }

    /// Appends a `numeric` field with display scale 4 from a value scaled by 10⁴ (see ``ScaledDecimal``).
    ///
    /// Layout: Int16 `ndigits`, Int16 `weight`, Int16 `sign` (`0x0000` +, `0x4000` −), Int16 `dscale` = 4, then
    /// `ndigits` base-10000 digits, most significant first, with leading and trailing zero digits stripped
    /// (PostgreSQL's canonical form). Zero has `ndigits` 0 and `weight` 0. Because the scale is exactly one
    /// base-10000 digit, the fraction is the last digit group (weight −1) and the encoding is exact for every
    /// `Int64`, including ±9 999 999 999 (±999 999.9999, the `DECIMAL(10,4)` limit).
    ///
    /// - Parameter scaled: The value × 10 000, for example `47624300` for `4762.43`.
    @inline(__always)
    package mutating func appendNumeric(scaled: Int64) {
        reserve(4 + 8 + 2 * 5)
        if scaled == 0 {
            storeInt32(8)
            storeInt16(0)  // ndigits
            storeInt16(0)  // weight
            storeInt16(0)  // sign
            storeInt16(4)  // dscale
            return
        }
        let magnitude = scaled.magnitude
        var integer = magnitude / 10_000
        let fraction = UInt16(truncatingIfNeeded: magnitude % 10_000)
        // Integer part in base-10000 groups, least significant first; UInt64.max / 10^4 < 10^16: at most 4 groups.
        var groups: (UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0)
        var k = 0
        while integer > 0 {
            let g = UInt16(truncatingIfNeeded: integer % 10_000)
            integer /= 10_000
            switch k {
            case 0: groups.0 = g
            case 1: groups.1 = g
            case 2: groups.2 = g
            default: groups.3 = g
            }
            k += 1
        }
        func group(_ i: Int) -> UInt16 {
            switch i {
            case 0: return groups.0
            case 1: return groups.1
            case 2: return groups.2
            default: return groups.3
            }
        }
        // Digits, most significant first: groups k-1 … 0, then the fraction. Strip trailing zero groups.
        // Leading groups are non-zero by construction (the top integer group, or the fraction when k == 0).
        var lowest = 0  // index of the lowest integer group kept
        let keepFraction = fraction != 0
        if !keepFraction {
            while lowest < k, group(lowest) == 0 { lowest += 1 }
        }
        let ndigits = (k - lowest) + (keepFraction ? 1 : 0)
        let weight = k - 1
        storeInt32(Int32(8 + 2 * ndigits))
        storeInt16(Int16(ndigits))
        storeInt16(Int16(weight))
        storeInt16(scaled < 0 ? 0x4000 : 0x0000)
        storeInt16(4)
        var i = k - 1
        while i >= lowest {
            storeInt16(Int16(bitPattern: group(i)))
            i -= 1
        }
        if keepFraction { storeInt16(Int16(bitPattern: fraction)) }
    }

    // MARK: - Rows of sensor_readings

    /// The columns of ``appendReading(unixSeconds:value:status:sensor:)`` rows, in order.
    package static let readingColumns = [
        "timestamp", "sensor_id", "floor_number", "equipment_type", "reading_value", "unit", "status",
    ]

    /// `COPY <table> (timestamp, sensor_id, …) FROM STDIN (FORMAT binary)` for rows built by
    /// ``appendReading(unixSeconds:value:status:sensor:)``.
    ///
    /// - Parameter table: The target table, already quoted/qualified as needed (for example a temp staging table).
    package static func copyReadingsSQL(table: String) -> String {
        let columns = readingColumns.map { "\"\($0)\"" }.joined(separator: ", ")
        return "COPY \(table) (\(columns)) FROM STDIN (FORMAT binary)"
    }

    /// `COPY <table> (id, timestamp, sensor_id, …) FROM STDIN (FORMAT binary)` for rows built by
    /// ``appendReading(id:unixSeconds:value:status:sensor:)``: the ids are taken from the sequence beforehand.
    package static func copyReadingsWithIDSQL(table: String) -> String {
        let columns = (["id"] + readingColumns).map { "\"\($0)\"" }.joined(separator: ", ")
        return "COPY \(table) (\(columns)) FROM STDIN (FORMAT binary)"
    }

    /// Appends one `sensor_readings` row with its `id` (8 fields: `id`, then ``readingColumns`` order).
    @inline(__always)
    package mutating func appendReading(
        id: Int64,
        unixSeconds: Int64,
        value: Int64?,
        status: ReadingStatus,
        sensor: SensorFields
    ) {
        appendTupleHeader(fieldCount: 8)
        appendInt64(id)
        appendTimestamptz(unixSeconds: unixSeconds)
        append(sensor.identity)
        if let value { appendNumeric(scaled: value) } else { appendNull() }
        switch status {
        case .normal: append(sensor.unitAndNormal)
        case .anomaly: append(sensor.unitAndAnomaly)
        }
    }

    /// Appends one `sensor_readings` row (7 fields, in ``readingColumns`` order).
    ///
    /// - Parameters:
    ///   - unixSeconds: The reading time, seconds since the Unix epoch (UTC).
    ///   - value: The value × 10 000, or `nil` for NULL.
    ///   - status: The quality label.
    ///   - sensor: The sensor's pre-encoded text and integer fields.
    @inline(__always)
    package mutating func appendReading(
        unixSeconds: Int64,
        value: Int64?,
        status: ReadingStatus,
        sensor: SensorFields
    ) {
        appendTupleHeader(fieldCount: 7)
        appendTimestamptz(unixSeconds: unixSeconds)
        append(sensor.identity)
        if let value { appendNumeric(scaled: value) } else { appendNull() }
        switch status {
        case .normal: append(sensor.unitAndNormal)
        case .anomaly: append(sensor.unitAndAnomaly)
        }
    }

    // MARK: - Output

    /// Sends the buffered bytes to `session` when at least ``flushThreshold`` bytes are buffered.
    @inline(__always)
    package mutating func flushIfNeeded(to session: inout CopyInSession) throws(PostgresError) {
        if count >= flushThreshold { try flush(to: &session) }
    }

    /// Sends all buffered bytes to `session` and empties the buffer (keeping its memory).
    package mutating func flush(to session: inout CopyInSession) throws(PostgresError) {
        guard count > 0 else { return }
        try session.write(UnsafeRawBufferPointer(start: storage, count: count))
        count = 0
    }

    /// Calls `body` with the buffered bytes (for tests and for sinks other than a COPY session).
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage, count: count))
    }

    /// A copy of the buffered bytes.
    package var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Discards the buffered bytes, keeping the memory.
    package mutating func removeAll() {
        count = 0
    }

    // MARK: - Private storage

    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(to: count + n) }
    }

    private mutating func grow(to minimum: Int) {
        var newCapacity = capacity * 2
        while newCapacity < minimum { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newStorage.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
    }

    @inline(__always)
    private mutating func storeInt16(_ value: Int16) {
        storage.storeBytes(of: value.bigEndian, toByteOffset: count, as: Int16.self)
        count += 2
    }

    @inline(__always)
    private mutating func storeInt32(_ value: Int32) {
        storage.storeBytes(of: value.bigEndian, toByteOffset: count, as: Int32.self)
        count += 4
    }

    @inline(__always)
    private mutating func storeInt64(_ value: Int64) {
        storage.storeBytes(of: value.bigEndian, toByteOffset: count, as: Int64.self)
        count += 8
    }

    @inline(__always)
    private mutating func storeRaw(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        (storage + count).copyMemory(from: base, byteCount: bytes.count)
        count += bytes.count
    }
}

// MARK: - Pre-encoded fields

/// One or more consecutive binary COPY fields, length prefixes included, encoded once and appended by `memcpy`.
package struct EncodedField: Sendable, Hashable {
    /// The encoded bytes.
    package let bytes: [UInt8]

    /// Wraps already encoded bytes.
    package init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// A `text`/`varchar` field.
    package static func text(_ value: String) -> EncodedField {
        let utf8 = Array(value.utf8)
        return EncodedField(bytes: bigEndianBytes(Int32(utf8.count)) + utf8)
    }

    /// An `int4` field.
    package static func int32(_ value: Int32) -> EncodedField {
        EncodedField(bytes: bigEndianBytes(Int32(4)) + bigEndianBytes(value))
    }

    /// A NULL field.
    package static let null = EncodedField(bytes: bigEndianBytes(Int32(-1)))

    /// The concatenation of several fields, appended as one.
    package static func concatenation(_ fields: [EncodedField]) -> EncodedField {
        EncodedField(bytes: fields.flatMap(\.bytes))
    }

    private static func bigEndianBytes(_ value: Int32) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

/// The fields of a `sensor_readings` row that depend only on the sensor, pre-encoded once per sensor.
package struct SensorFields: Sendable, Hashable {
    /// `sensor_id`, `floor_number`, `equipment_type`.
    package let identity: EncodedField
    /// `unit`, `status` = `normal`.
    package let unitAndNormal: EncodedField
    /// `unit`, `status` = `anomaly`.
    package let unitAndAnomaly: EncodedField

    /// Encodes the fields of a sensor.
    ///
    /// - Parameters:
    ///   - sensorID: For example `f3_z1_ac4`.
    ///   - floor: The floor number.
    ///   - equipmentType: The equipment type; its ``EquipmentType/unit`` is stored as `unit`.
    package init(sensorID: String, floor: Int, equipmentType: EquipmentType) {
        identity = .concatenation([.text(sensorID), .int32(Int32(floor)), .text(equipmentType.rawValue)])
        unitAndNormal = .concatenation([.text(equipmentType.unit), .text(ReadingStatus.normal.label)])
        unitAndAnomaly = .concatenation([.text(equipmentType.unit), .text(ReadingStatus.anomaly.label)])
    }

    /// Encodes the fields of a sensor, deriving floor and equipment type from the id (``SensorColumn/describe(sensorID:)``).
    ///
    /// - Returns: `nil` when the id does not follow the CU-BEMS pattern.
    package init?(sensorID: String) {
        guard let (floor, type) = SensorColumn.describe(sensorID: sensorID) else { return nil }
        self.init(sensorID: sensorID, floor: floor, equipmentType: type)
    }
}
