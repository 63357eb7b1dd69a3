/// Constants of the chunk format (see `FORMAT.md`), shared by ``ChunkWriter`` and ``ChunkReader``.
package enum ChunkFormat {
    /// The 8 magic bytes every chunk starts with: ASCII `BEMSCHNK`.
    package static let magic: [UInt8] = Array("BEMSCHNK".utf8)
    /// The format version this code writes and reads.
    package static let version: UInt16 = 1
    /// Length of the fixed preamble: magic, version, flags, reserved, total length, preamble check.
    static let preambleLength = 32
    /// Length of the SHA-256 footer.
    static let footerLength = 32
    /// Bytes of SHA-256 kept as the preamble check.
    static let preambleCheckLength = 8
    /// Directory flag: a reader that does not understand this column must refuse the chunk.
    static let requiredFlag: UInt8 = 1
    /// The `previous_status` byte that stands for SQL NULL.
    static let nullStatus: UInt8 = 0xFF

    /// Column encodings (`FORMAT.md` §6).
    enum Encoding: UInt8 {
        case sensorRuns = 1
        case runDeltaVarint = 2
        case uint8 = 3
        case nullableInt64Delta = 4
        case nullableUInt8 = 5
    }

    /// Block compression ids.
    enum Compression: UInt8 {
        case none = 0
        case zstd = 1
    }

    /// Column names of format version 1.
    enum Column {
        static let sensor = "sensor"
        static let timestamp = "timestamp"
        static let value = "value"
        static let status = "status"
        static let action = "action"
        static let previousValue = "previous_value"
        static let previousStatus = "previous_status"
    }
}

/// Caps the reader (and writer) enforce so hostile or oversized chunks fail cleanly instead of exhausting memory.
package struct ChunkLimits: Sendable, Equatable {
    /// The most rows a chunk may have. The default, 2^25 (33.5 M), is ~650 floor-days of one CU-BEMS floor.
    package var maxRowCount: Int
    /// The most sensors a chunk's dictionary may have.
    package var maxSensorCount: Int
    /// The most columns a directory may list.
    package var maxColumnCount: Int
    /// The most metadata entries.
    package var maxMetadataCount: Int

    /// Creates limits.
    package init(
        maxRowCount: Int = 1 << 25, maxSensorCount: Int = 1 << 20, maxColumnCount: Int = 256,
        maxMetadataCount: Int = 1 << 16
    ) {
        self.maxRowCount = maxRowCount
        self.maxSensorCount = maxSensorCount
        self.maxColumnCount = maxColumnCount
        self.maxMetadataCount = maxMetadataCount
    }

    /// The defaults used by ``ChunkWriter`` and ``ChunkReader``.
    package static let standard = ChunkLimits()
}

// MARK: - Varint and zigzag helpers

/// Maps a signed integer to unsigned so small magnitudes stay small: 0, -1, 1, -2 → 0, 1, 2, 3.
@inline(__always)
func zigzagEncode(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value &<< 1) ^ (value &>> 63))
}

/// The inverse of ``zigzagEncode(_:)``.
@inline(__always)
func zigzagDecode(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value &>> 1) ^ (0 &- Int64(bitPattern: value & 1))
}

/// Writes an unsigned LEB128 varint at `pointer[index]`, advancing `index`; needs up to 10 bytes of room.
@inline(__always)
func putVarint(_ value: UInt64, _ pointer: UnsafeMutablePointer<UInt8>, _ index: inout Int) {
    var value = value
    while value >= 0x80 {
        pointer[index] = UInt8(truncatingIfNeeded: value) | 0x80
        value &>>= 7
        index &+= 1
    }
    pointer[index] = UInt8(truncatingIfNeeded: value)
    index &+= 1
}

/// Reads an unsigned LEB128 varint from `pointer[index..<end]`, advancing `index`.
///
/// - Returns: The value, or `nil` when the varint runs past `end`, is longer than 10 bytes, or overflows 64 bits.
@inline(__always)
func getVarint(_ pointer: UnsafePointer<UInt8>, _ index: inout Int, _ end: Int) -> UInt64? {
    guard index < end else { return nil }
    let first = pointer[index]
    if first < 0x80 {
        index &+= 1
        return UInt64(first)
    }
    var result: UInt64 = 0
    var shift: UInt64 = 0
    var i = index
    while true {
        guard i < end, shift < 64 else { return nil }
        let byte = pointer[i]
        i &+= 1
        if shift == 63, byte > 1 { return nil }
        result |= UInt64(byte & 0x7F) &<< shift
        if byte < 0x80 { break }
        shift &+= 7
    }
    index = i
    return result
}

// MARK: - Little-endian byte helpers

extension Array where Element == UInt8 {
    /// Appends `value` in little-endian byte order.
    @inline(__always)
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Overwrites `MemoryLayout<T>.size` bytes at `offset` with `value` in little-endian byte order.
    mutating func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { source in
            for (i, byte) in source.enumerated() { self[offset + i] = byte }
        }
    }
}

/// Reads a little-endian integer from `bytes` at `offset` (advancing it), checking it lies before `end`.
///
/// - Throws: ``ChunkError/Code/corrupt`` naming `what` and the offset when fewer than `size` bytes remain.
@inline(__always)
func readLittleEndian<T: FixedWidthInteger & BitwiseCopyable>(
    _ bytes: RawSpan, _ offset: inout Int, end: Int, _ what: StaticString, as: T.Type = T.self
) throws(ChunkError) -> T {
    let size = MemoryLayout<T>.size
    guard offset >= 0, end <= bytes.byteCount, end - offset >= size else {
        throw ChunkError(.corrupt, "\(what) runs past the end of its section", offset: offset)
    }
    let value = T(littleEndian: bytes.unsafeLoadUnaligned(fromByteOffset: offset, as: T.self))
    offset += size
    return value
}

/// Reads `length` bytes at `offset` as strict UTF-8 (advancing it), checking they lie before `end`.
func readUTF8(
    _ bytes: RawSpan, _ offset: inout Int, length: Int, end: Int, _ what: StaticString
) throws(ChunkError) -> String {
    guard length >= 0, end <= bytes.byteCount, end - offset >= length else {
        throw ChunkError(.corrupt, "\(what) of \(length) bytes runs past the end of its section", offset: offset)
    }
    let slice = bytes.extracting(offset..<(offset + length))
    let string = slice.withUnsafeBytes { String(validating: $0, as: UTF8.self) }
    guard let string else {
        throw ChunkError(.corrupt, "\(what) is not valid UTF-8", offset: offset)
    }
    offset += length
    return string
}
