import Crypto

/// Decodes chunks written by ``ChunkWriter`` (format described in `Chunk/FORMAT.md`).
///
/// The reader never trusts a length from the bytes: every length is checked against the bytes that remain and
/// against ``ChunkLimits`` before anything is allocated, and every failure is a ``ChunkError`` naming the offset.
package enum ChunkReader {
    /// Verifies and decodes a whole chunk.
    ///
    /// Checks run in this order: magic, length (``ChunkError/Code/truncated``), preamble check and SHA-256 footer
    /// (``ChunkError/Code/checksumMismatch``), version, then structure, and finally that the decoded columns agree
    /// with the header statistics (``ChunkError/Code/corrupt``). Unknown optional columns are skipped.
    ///
    /// - Parameters:
    ///   - bytes: The complete chunk.
    ///   - limits: Caps on row, sensor, column and metadata counts.
    /// - Returns: The header and the readings, in canonical order.
    /// - Throws: ``ChunkError``.
    package static func decode(
        _ bytes: [UInt8], limits: ChunkLimits = .standard
    ) throws(ChunkError) -> (header: ChunkHeader, data: ChunkData) {
        let decompressor = try makeDecompressor()
        return try decode(bytes, limits: limits, using: decompressor)
    }

    /// Verifies and decodes a whole chunk with a caller-owned decompression context, so a stage reading many
    /// chunks reuses one `ZSTD_DCtx`. Same result as ``decode(_:limits:)``.
    ///
    /// - Parameters:
    ///   - bytes: The complete chunk.
    ///   - limits: Caps on row, sensor, column and metadata counts.
    ///   - decompressor: The context to use; not shared between threads.
    /// - Returns: The header and the readings, in canonical order.
    /// - Throws: ``ChunkError``.
    package static func decode(
        _ bytes: [UInt8], limits: ChunkLimits = .standard, using decompressor: borrowing ZstdDecompressor
    ) throws(ChunkError) -> (header: ChunkHeader, data: ChunkData) {
        let raw = bytes.span.bytes
        let layout = try parseLayout(raw, verifyChecksum: true, limits: limits)
        let data = try decodeColumns(raw, layout, decompressor)
        return (layout.header, data)
    }

    /// Verifies the checksum and decodes only the header (statistics, metadata, directory), not the columns.
    ///
    /// - Parameters:
    ///   - bytes: The complete chunk.
    ///   - verifyChecksum: Whether to hash the whole chunk first (default `true`); the header is bounds-checked
    ///     either way.
    ///   - limits: Caps on counts.
    /// - Returns: The header.
    /// - Throws: ``ChunkError``.
    package static func readHeader(
        _ bytes: [UInt8], verifyChecksum: Bool = true, limits: ChunkLimits = .standard
    ) throws(ChunkError) -> ChunkHeader {
        try parseLayout(bytes.span.bytes, verifyChecksum: verifyChecksum, limits: limits).header
    }

    // MARK: - Layout

    /// The parsed header plus where each known column lives.
    struct Layout {
        var header: ChunkHeader
        var known: [String: ChunkColumnInfo]
    }

    private static func parseLayout(
        _ raw: RawSpan, verifyChecksum: Bool, limits: ChunkLimits
    ) throws(ChunkError) -> Layout {
        let size = raw.byteCount
        // Magic.
        let magic = ChunkFormat.magic
        for i in 0..<min(size, magic.count) where raw.unsafeLoad(fromByteOffset: i, as: UInt8.self) != magic[i] {
            throw ChunkError(.badMagic, "not a BEMS chunk (magic \"BEMSCHNK\" expected)", offset: i)
        }
        guard size >= ChunkFormat.preambleLength else {
            throw ChunkError(
                .truncated, "\(size) bytes; the preamble alone needs \(ChunkFormat.preambleLength)",
                offset: size)
        }
        // Preamble check: first 8 bytes of SHA-256 over bytes 0..<24.
        let check = raw.extracting(0..<24).withUnsafeBytes { SHA256.hash(data: $0) }
        var index = 24
        for byte in check.prefix(ChunkFormat.preambleCheckLength) {
            guard raw.unsafeLoad(fromByteOffset: index, as: UInt8.self) == byte else {
                throw ChunkError(.checksumMismatch, "preamble check does not match bytes 0..<24", offset: 24)
            }
            index += 1
        }
        var offset = 8
        let version: UInt16 = try readLittleEndian(raw, &offset, end: size, "version")
        guard version == ChunkFormat.version else {
            throw ChunkError(
                .unsupportedVersion, "format version \(version); this reader knows \(ChunkFormat.version)",
                offset: 8)
        }
        let flags: UInt16 = try readLittleEndian(raw, &offset, end: size, "flags")
        let reserved: UInt32 = try readLittleEndian(raw, &offset, end: size, "reserved")
        guard flags == 0, reserved == 0 else {
            throw ChunkError(.unsupportedVersion, "unknown preamble flags \(flags)/\(reserved)", offset: 10)
        }
        let declared: UInt64 = try readLittleEndian(raw, &offset, end: size, "total length")
        guard declared <= UInt64(size) else {
            throw ChunkError(
                .truncated, "chunk declares \(declared) bytes but only \(size) are present",
                offset: size)
        }
        let total = Int(declared)
        guard total == size else {
            throw ChunkError(.corrupt, "\(size - total) unexpected bytes after the declared end", offset: total)
        }
        let minimum = ChunkFormat.preambleLength + 4 + 4 + ChunkFormat.footerLength
        guard total >= minimum else {
            throw ChunkError(.corrupt, "declared length \(total) is below the minimum \(minimum)", offset: 16)
        }
        let bodyEnd = total - ChunkFormat.footerLength
        if verifyChecksum {
            var hasher = SHA256()
            raw.extracting(0..<bodyEnd).withUnsafeBytes { hasher.update(bufferPointer: $0) }
            let digest = hasher.finalize()
            var i = bodyEnd
            for byte in digest {
                guard raw.unsafeLoad(fromByteOffset: i, as: UInt8.self) == byte else {
                    throw ChunkError(
                        .checksumMismatch, "SHA-256 of bytes 0..<\(bodyEnd) does not match the footer",
                        offset: bodyEnd)
                }
                i += 1
            }
        }

        // Header section.
        offset = ChunkFormat.preambleLength
        let headerLength: UInt32 = try readLittleEndian(raw, &offset, end: bodyEnd, "header length")
        guard Int(headerLength) <= bodyEnd - offset else {
            throw ChunkError(.corrupt, "header length \(headerLength) runs past the end", offset: offset - 4)
        }
        let headerEnd = offset + Int(headerLength)
        var header = try parseHeader(raw, &offset, end: headerEnd, limits: limits)
        offset = headerEnd  // bytes after the known header fields are reserved for later versions and skipped

        // Column directory.
        let directoryOffset = offset
        let columnCount: UInt32 = try readLittleEndian(raw, &offset, end: bodyEnd, "column count")
        guard Int(columnCount) <= limits.maxColumnCount else {
            throw ChunkError(
                .corrupt, "\(columnCount) columns exceed the limit \(limits.maxColumnCount)",
                offset: directoryOffset)
        }
        var entries: [(info: ChunkColumnInfo, at: Int)] = []
        entries.reserveCapacity(Int(columnCount))
        for _ in 0..<Int(columnCount) {
            let entryOffset = offset
            let nameLength: UInt8 = try readLittleEndian(raw, &offset, end: bodyEnd, "column name length")
            let name = try readUTF8(raw, &offset, length: Int(nameLength), end: bodyEnd, "column name")
            let encoding: UInt8 = try readLittleEndian(raw, &offset, end: bodyEnd, "column encoding")
            let compression: UInt8 = try readLittleEndian(raw, &offset, end: bodyEnd, "column compression")
            let columnFlags: UInt8 = try readLittleEndian(raw, &offset, end: bodyEnd, "column flags")
            let rows: UInt64 = try readLittleEndian(raw, &offset, end: bodyEnd, "column row count")
            let uncompressed: UInt64 = try readLittleEndian(raw, &offset, end: bodyEnd, "uncompressed length")
            let compressed: UInt64 = try readLittleEndian(raw, &offset, end: bodyEnd, "compressed length")
            guard rows <= UInt64(limits.maxRowCount), uncompressed <= UInt64(Int32.max) * 8,
                compressed <= UInt64(bodyEnd)
            else {
                throw ChunkError(.corrupt, "column \(name): sizes out of range", offset: entryOffset)
            }
            let info = ChunkColumnInfo(
                name: name, encoding: encoding, compression: compression, flags: columnFlags, rowCount: Int(rows),
                uncompressedLength: Int(uncompressed), compressedLength: Int(compressed), offset: 0)
            entries.append((info, entryOffset))
        }
        var blockOffset = offset
        var known: [String: ChunkColumnInfo] = [:]
        for (entry, entryOffset) in entries {
            var info = entry
            guard info.compressedLength <= bodyEnd - blockOffset else {
                throw ChunkError(
                    .corrupt, "column \(info.name) block of \(info.compressedLength) bytes runs past the end",
                    offset: entryOffset)
            }
            info.offset = blockOffset
            blockOffset += info.compressedLength
            header.columns.append(info)
            guard known[info.name] == nil else {
                throw ChunkError(.corrupt, "column \(info.name) listed twice", offset: entryOffset)
            }
            if let expected = expectedEncoding(info.name), info.encoding == expected.rawValue,
                ChunkFormat.Compression(rawValue: info.compression) != nil
            {
                guard info.rowCount == header.rowCount else {
                    throw ChunkError(
                        .corrupt,
                        "column \(info.name) has \(info.rowCount) rows, header says "
                            + "\(header.rowCount)", offset: entryOffset)
                }
                known[info.name] = info
            } else if info.flags & ChunkFormat.requiredFlag != 0 {
                throw ChunkError(
                    .unsupportedVersion,
                    "required column \(info.name) (encoding \(info.encoding), "
                        + "compression \(info.compression)) is not understood", offset: entryOffset)
            }
        }
        guard blockOffset == bodyEnd else {
            throw ChunkError(
                .corrupt, "\(bodyEnd - blockOffset) bytes between the last column and the footer",
                offset: blockOffset)
        }
        for name in [
            ChunkFormat.Column.sensor, ChunkFormat.Column.timestamp, ChunkFormat.Column.value,
            ChunkFormat.Column.status,
        ] where known[name] == nil {
            throw ChunkError(.corrupt, "required column \(name) is missing", offset: directoryOffset)
        }
        guard header.hasActions == (known[ChunkFormat.Column.action] != nil),
            header.hasPreviousValues == (known[ChunkFormat.Column.previousValue] != nil),
            header.hasPreviousStatuses == (known[ChunkFormat.Column.previousStatus] != nil)
        else {
            throw ChunkError(.corrupt, "header flags disagree with the column directory", offset: directoryOffset)
        }
        header.totalLength = total
        return Layout(header: header, known: known)
    }

    /// The encoding this reader expects for a column name of format version 1, or `nil` for an unknown name.
    private static func expectedEncoding(_ name: String) -> ChunkFormat.Encoding? {
        switch name {
        case ChunkFormat.Column.sensor: return .sensorRuns
        case ChunkFormat.Column.timestamp, ChunkFormat.Column.value: return .runDeltaVarint
        case ChunkFormat.Column.status, ChunkFormat.Column.action: return .uint8
        case ChunkFormat.Column.previousValue: return .nullableInt64Delta
        case ChunkFormat.Column.previousStatus: return .nullableUInt8
        default: return nil
        }
    }

    /// Parses the header section fields (`FORMAT.md` §4).
    private static func parseHeader(
        _ raw: RawSpan, _ offset: inout Int, end: Int, limits: ChunkLimits
    ) throws(ChunkError) -> ChunkHeader {
        let start = offset
        let rows: UInt64 = try readLittleEndian(raw, &offset, end: end, "row count")
        guard rows <= UInt64(limits.maxRowCount) else {
            throw ChunkError(.corrupt, "\(rows) rows exceed the limit \(limits.maxRowCount)", offset: start)
        }
        let minTime: Int64 = try readLittleEndian(raw, &offset, end: end, "min timestamp")
        let maxTime: Int64 = try readLittleEndian(raw, &offset, end: end, "max timestamp")
        let flagsOffset = offset
        let flags: UInt32 = try readLittleEndian(raw, &offset, end: end, "header flags")
        guard flags & ~7 == 0 else {
            throw ChunkError(.unsupportedVersion, "unknown header flags \(flags)", offset: flagsOffset)
        }
        let sensorCountOffset = offset
        let sensorCount: UInt32 = try readLittleEndian(raw, &offset, end: end, "sensor count")
        // Each sensor entry takes at least 34 bytes, which bounds the allocation by the section length.
        guard Int(sensorCount) <= limits.maxSensorCount, Int(sensorCount) <= (end - offset) / 34 else {
            throw ChunkError(.corrupt, "sensor count \(sensorCount) is impossible here", offset: sensorCountOffset)
        }
        var sensors: [SensorStats] = []
        sensors.reserveCapacity(Int(sensorCount))
        var seen = Set<String>(minimumCapacity: Int(sensorCount))
        var countSum = 0
        for _ in 0..<Int(sensorCount) {
            let entryOffset = offset
            let idLength: UInt16 = try readLittleEndian(raw, &offset, end: end, "sensor id length")
            let id = try readUTF8(raw, &offset, length: Int(idLength), end: end, "sensor id")
            let count: UInt64 = try readLittleEndian(raw, &offset, end: end, "sensor count")
            let sum: Int64 = try readLittleEndian(raw, &offset, end: end, "sensor value sum")
            let first: Int64 = try readLittleEndian(raw, &offset, end: end, "sensor min timestamp")
            let last: Int64 = try readLittleEndian(raw, &offset, end: end, "sensor max timestamp")
            guard count <= rows, seen.insert(id).inserted, first <= last else {
                throw ChunkError(.corrupt, "sensor entry \"\(id)\" is inconsistent", offset: entryOffset)
            }
            countSum += Int(count)
            sensors.append(
                SensorStats(
                    sensorID: id, count: Int(count), valueSum: sum, minTimestamp: first,
                    maxTimestamp: last))
        }
        guard countSum == Int(rows) else {
            throw ChunkError(.corrupt, "sensor counts add up to \(countSum), header says \(rows)", offset: start)
        }
        let metadataOffset = offset
        let metadataCount: UInt32 = try readLittleEndian(raw, &offset, end: end, "metadata count")
        guard Int(metadataCount) <= limits.maxMetadataCount, Int(metadataCount) <= (end - offset) / 6 else {
            throw ChunkError(.corrupt, "metadata count \(metadataCount) is impossible here", offset: metadataOffset)
        }
        var metadata: [String: String] = [:]
        metadata.reserveCapacity(Int(metadataCount))
        for _ in 0..<Int(metadataCount) {
            let entryOffset = offset
            let keyLength: UInt16 = try readLittleEndian(raw, &offset, end: end, "metadata key length")
            let key = try readUTF8(raw, &offset, length: Int(keyLength), end: end, "metadata key")
            let valueLength: UInt32 = try readLittleEndian(raw, &offset, end: end, "metadata value length")
            let value = try readUTF8(raw, &offset, length: Int(valueLength), end: end, "metadata value")
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw ChunkError(.corrupt, "metadata key \"\(key)\" appears twice", offset: entryOffset)
            }
        }
        return ChunkHeader(
            formatVersion: ChunkFormat.version, rowCount: Int(rows), minTimestamp: minTime, maxTimestamp: maxTime,
            sensors: sensors, metadata: metadata, hasActions: flags & 1 != 0, hasPreviousValues: flags & 2 != 0,
            hasPreviousStatuses: flags & 4 != 0, columns: [], totalLength: 0)
    }
}
