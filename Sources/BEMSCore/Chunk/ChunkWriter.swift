import Crypto

/// Encodes ``ChunkData`` into the chunk format described in `Chunk/FORMAT.md`.
package enum ChunkWriter {
    /// Encodes a chunk: rows in canonical order, each column encoded and zstd-compressed, SHA-256 footer.
    ///
    /// The output is deterministic for a given input, level and libzstd version.
    ///
    /// - Parameters:
    ///   - data: The readings. Columns must have equal lengths, sensor indexes must be valid, sensor ids unique,
    ///     and values (and previous values) within ±``ScaledDecimal/maxMagnitude``.
    ///   - level: The zstd level for every column block.
    ///   - limits: Size caps; the writer refuses what the default reader would refuse.
    /// - Returns: The complete chunk bytes.
    /// - Throws: ``ChunkError`` with code ``ChunkError/Code/invalidInput`` or ``ChunkError/Code/zstd``.
    package static func encode(
        _ data: ChunkData, level: Int32 = 3, limits: ChunkLimits = .standard
    ) throws(ChunkError) -> [UInt8] {
        let compressor = try makeCompressor()
        return try encode(data, level: level, limits: limits, using: compressor)
    }

    /// Encodes a chunk with a caller-owned compression context, so a stage writing many chunks reuses one
    /// `ZSTD_CCtx` instead of allocating one per chunk. Same output as ``encode(_:level:limits:)``.
    ///
    /// - Parameters:
    ///   - data: The readings (see ``encode(_:level:limits:)``).
    ///   - level: The zstd level for every column block.
    ///   - limits: Size caps.
    ///   - compressor: The context to use; not shared between threads.
    /// - Returns: The complete chunk bytes.
    /// - Throws: ``ChunkError``.
    package static func encode(
        _ data: ChunkData, level: Int32 = 3, limits: ChunkLimits = .standard,
        using compressor: borrowing ZstdCompressor
    ) throws(ChunkError) -> [UInt8] {
        try validate(data, limits: limits)
        let n = data.count
        let sensorCount = data.sensorIDs.count
        let (counts, permutation) = ChunkOrdering.order(
            sensorIndexes: data.sensorIndexes, timestamps: data.timestamps, sensorCount: sensorCount)

        // MARK: Encode the mandatory columns in one pass over the canonical order.
        let runs = UnsafeMutablePointer<UInt8>.allocate(capacity: max(sensorCount * 20, 1))
        let times = UnsafeMutablePointer<UInt8>.allocate(capacity: max(n * 10, 1))
        let values = UnsafeMutablePointer<UInt8>.allocate(capacity: max(n * 10, 1))
        let statuses = UnsafeMutablePointer<UInt8>.allocate(capacity: max(n, 1))
        defer {
            runs.deallocate()
            times.deallocate()
            values.deallocate()
            statuses.deallocate()
        }
        var runsLength = 0
        var timesLength = 0
        var valuesLength = 0
        var sums = [Int64](repeating: 0, count: sensorCount)
        var minTimes = [Int64](repeating: 0, count: sensorCount)
        var maxTimes = [Int64](repeating: 0, count: sensorCount)
        var badRow = -1
        let maxMagnitude = ScaledDecimal.maxMagnitude

        data.timestamps.withUnsafeBufferPointer { ts in
            data.values.withUnsafeBufferPointer { vs in
                data.statuses.withUnsafeBufferPointer { st in
                    (permutation ?? []).withUnsafeBufferPointer { permBuffer in
                        let perm: UnsafePointer<UInt32>? = permutation == nil ? nil : permBuffer.baseAddress
                        var p = 0
                        sensors: for sensor in 0..<sensorCount {
                            let count = counts[sensor]
                            if count == 0 { continue }
                            putVarint(UInt64(sensor), runs, &runsLength)
                            putVarint(UInt64(count), runs, &runsLength)
                            let end = p + count
                            minTimes[sensor] = ts[perm.map { Int($0[p]) } ?? p]
                            maxTimes[sensor] = ts[perm.map { Int($0[end - 1]) } ?? (end - 1)]
                            var previousTime: Int64 = 0
                            var previousValue: Int64 = 0
                            var sum: Int64 = 0
                            while p < end {
                                let r = perm.map { Int($0[p]) } ?? p
                                let t = ts[r]
                                let v = vs[r]
                                if v > maxMagnitude || v < -maxMagnitude {
                                    badRow = r
                                    break sensors
                                }
                                putVarint(zigzagEncode(t &- previousTime), times, &timesLength)
                                putVarint(zigzagEncode(v &- previousValue), values, &valuesLength)
                                statuses[p] = st[r].rawValue
                                previousTime = t
                                previousValue = v
                                sum &+= v
                                p &+= 1
                            }
                            sums[sensor] = sum
                        }
                    }
                }
            }
        }
        if badRow >= 0 {
            throw ChunkError(
                .invalidInput, "value \(data.values[badRow]) of row \(badRow) is outside ±\(maxMagnitude)")
        }

        // MARK: Compress the columns.
        var blocks: [EncodedBlock] = []
        blocks.reserveCapacity(7)
        try blocks.append(
            .make(
                ChunkFormat.Column.sensor, .sensorRuns, rows: n, required: true,
                UnsafeRawBufferPointer(start: runs, count: runsLength), compressor, level))
        try blocks.append(
            .make(
                ChunkFormat.Column.timestamp, .runDeltaVarint, rows: n, required: true,
                UnsafeRawBufferPointer(start: times, count: timesLength), compressor, level))
        try blocks.append(
            .make(
                ChunkFormat.Column.value, .runDeltaVarint, rows: n, required: true,
                UnsafeRawBufferPointer(start: values, count: valuesLength), compressor, level))
        try blocks.append(
            .make(
                ChunkFormat.Column.status, .uint8, rows: n, required: true,
                UnsafeRawBufferPointer(start: statuses, count: n), compressor, level))
        if let actions = data.actions {
            let encoded = gather(actions, permutation) { $0.rawValue }
            try blocks.append(
                encoded.span.bytes.withUnsafeBytes { (raw) throws(ChunkError) in
                    try EncodedBlock.make(
                        ChunkFormat.Column.action, .uint8, rows: n, required: false, raw,
                        compressor, level)
                })
        }
        if let previousValues = data.previousValues {
            let encoded = try encodePreviousValues(previousValues, values: data.values, permutation)
            try blocks.append(
                encoded.span.bytes.withUnsafeBytes { (raw) throws(ChunkError) in
                    try EncodedBlock.make(
                        ChunkFormat.Column.previousValue, .nullableInt64Delta, rows: n,
                        required: false, raw, compressor, level)
                })
        }
        if let previousStatuses = data.previousStatuses {
            let encoded = gather(previousStatuses, permutation) { $0?.rawValue ?? ChunkFormat.nullStatus }
            try blocks.append(
                encoded.span.bytes.withUnsafeBytes { (raw) throws(ChunkError) in
                    try EncodedBlock.make(
                        ChunkFormat.Column.previousStatus, .nullableUInt8, rows: n, required: false,
                        raw, compressor, level)
                })
        }

        // MARK: Assemble preamble, header, directory, blocks and footer.
        var stats: [SensorStats] = []
        stats.reserveCapacity(sensorCount)
        var minTime = Int64.max
        var maxTime = Int64.min
        for s in 0..<sensorCount {
            stats.append(
                SensorStats(
                    sensorID: data.sensorIDs[s], count: counts[s], valueSum: sums[s],
                    minTimestamp: minTimes[s], maxTimestamp: maxTimes[s]))
            if counts[s] > 0 {
                minTime = min(minTime, minTimes[s])
                maxTime = max(maxTime, maxTimes[s])
            }
        }
        if n == 0 { (minTime, maxTime) = (0, 0) }

        var header: [UInt8] = []
        header.appendLittleEndian(UInt64(n))
        header.appendLittleEndian(minTime)
        header.appendLittleEndian(maxTime)
        var flags: UInt32 = 0
        if data.actions != nil { flags |= 1 }
        if data.previousValues != nil { flags |= 2 }
        if data.previousStatuses != nil { flags |= 4 }
        header.appendLittleEndian(flags)
        header.appendLittleEndian(UInt32(sensorCount))
        for stat in stats {
            header.appendLittleEndian(UInt16(stat.sensorID.utf8.count))
            header.append(contentsOf: stat.sensorID.utf8)
            header.appendLittleEndian(UInt64(stat.count))
            header.appendLittleEndian(stat.valueSum)
            header.appendLittleEndian(stat.minTimestamp)
            header.appendLittleEndian(stat.maxTimestamp)
        }
        let metadata = data.metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        header.appendLittleEndian(UInt32(metadata.count))
        for (key, value) in metadata {
            header.appendLittleEndian(UInt16(key.utf8.count))
            header.append(contentsOf: key.utf8)
            header.appendLittleEndian(UInt32(value.utf8.count))
            header.append(contentsOf: value.utf8)
        }

        guard header.count <= Int(UInt32.max) else {
            throw ChunkError(.invalidInput, "header of \(header.count) bytes exceeds the 4 GiB section limit")
        }
        let blockBytes = blocks.reduce(0) { $0 + $1.bytes.count }
        var out: [UInt8] = []
        out.reserveCapacity(
            ChunkFormat.preambleLength + 8 + header.count + blocks.count * 40 + blockBytes
                + ChunkFormat.footerLength)
        out.append(contentsOf: ChunkFormat.magic)
        out.appendLittleEndian(ChunkFormat.version)
        out.appendLittleEndian(UInt16(0))  // flags
        out.appendLittleEndian(UInt32(0))  // reserved
        out.appendLittleEndian(UInt64(0))  // total length, patched below
        out.appendLittleEndian(UInt64(0))  // preamble check, patched below
        out.appendLittleEndian(UInt32(header.count))
        out.append(contentsOf: header)
        out.appendLittleEndian(UInt32(blocks.count))
        for block in blocks {
            out.append(UInt8(block.name.utf8.count))
            out.append(contentsOf: block.name.utf8)
            out.append(block.encoding.rawValue)
            out.append(block.compression.rawValue)
            out.append(block.required ? ChunkFormat.requiredFlag : 0)
            out.appendLittleEndian(UInt64(block.rows))
            out.appendLittleEndian(UInt64(block.uncompressedLength))
            out.appendLittleEndian(UInt64(block.bytes.count))
        }
        for block in blocks { out.append(contentsOf: block.bytes) }

        let total = out.count + ChunkFormat.footerLength
        out.storeLittleEndian(UInt64(total), at: 16)
        let check = SHA256.hash(data: out[0..<24])
        var checkIndex = 24
        for byte in check.prefix(ChunkFormat.preambleCheckLength) {
            out[checkIndex] = byte
            checkIndex += 1
        }
        var hasher = SHA256()
        out.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        let digest = hasher.finalize()
        out.append(contentsOf: digest)
        return out
    }

    /// Allocates the compression context shared by all columns of one chunk.
    private static func makeCompressor() throws(ChunkError) -> ZstdCompressor {
        do { return try ZstdCompressor() } catch { throw ChunkError(.zstd, error.description) }
    }

    // MARK: - Validation

    /// Checks column lengths, sensor ids, index bounds and sizes; values are range-checked while encoding.
    private static func validate(_ data: ChunkData, limits: ChunkLimits) throws(ChunkError) {
        let n = data.timestamps.count
        guard data.sensorIndexes.count == n, data.values.count == n, data.statuses.count == n else {
            throw ChunkError(
                .invalidInput,
                "column lengths differ: timestamps \(n), sensorIndexes "
                    + "\(data.sensorIndexes.count), values \(data.values.count), statuses \(data.statuses.count)")
        }
        if let a = data.actions, a.count != n {
            throw ChunkError(.invalidInput, "actions has \(a.count) rows, expected \(n)")
        }
        if let p = data.previousValues, p.count != n {
            throw ChunkError(.invalidInput, "previousValues has \(p.count) rows, expected \(n)")
        }
        if let p = data.previousStatuses, p.count != n {
            throw ChunkError(.invalidInput, "previousStatuses has \(p.count) rows, expected \(n)")
        }
        guard n <= limits.maxRowCount else {
            throw ChunkError(.invalidInput, "\(n) rows exceed the limit of \(limits.maxRowCount)")
        }
        guard data.sensorIDs.count <= limits.maxSensorCount else {
            throw ChunkError(.invalidInput, "\(data.sensorIDs.count) sensors exceed the limit \(limits.maxSensorCount)")
        }
        guard data.metadata.count <= limits.maxMetadataCount else {
            throw ChunkError(.invalidInput, "\(data.metadata.count) metadata entries exceed the limit")
        }
        var seen = Set<String>(minimumCapacity: data.sensorIDs.count)
        for id in data.sensorIDs {
            guard id.utf8.count <= Int(UInt16.max) else {
                throw ChunkError(.invalidInput, "sensor id longer than 65535 bytes")
            }
            guard seen.insert(id).inserted else {
                throw ChunkError(.invalidInput, "duplicate sensor id \"\(id)\"")
            }
        }
        for (key, value) in data.metadata {
            guard key.utf8.count <= Int(UInt16.max), value.utf8.count <= Int(UInt32.max) else {
                throw ChunkError(.invalidInput, "metadata entry \"\(key.prefix(40))\" too long")
            }
        }
        let sensorCount = UInt32(truncatingIfNeeded: data.sensorIDs.count)
        let bad = data.sensorIndexes.withUnsafeBufferPointer { indexes -> Int? in
            for i in 0..<indexes.count where indexes[i] >= sensorCount { return i }
            return nil
        }
        if let bad {
            throw ChunkError(
                .invalidInput,
                "row \(bad) has sensor index \(data.sensorIndexes[bad]) but there are \(sensorCount) sensors")
        }
    }

    // MARK: - Optional columns

    /// Reorders a column into canonical order while mapping each element to a byte.
    private static func gather<T>(_ column: [T], _ permutation: [UInt32]?, _ byte: (T) -> UInt8) -> [UInt8] {
        guard let permutation else { return column.map(byte) }
        return permutation.map { byte(column[Int($0)]) }
    }

    /// Encodes `previous_value`: validity bitmap, then zigzag varints of (previous − value) for present rows.
    private static func encodePreviousValues(
        _ previous: [Int64?], values: [Int64], _ permutation: [UInt32]?
    ) throws(ChunkError) -> [UInt8] {
        let n = previous.count
        let bitmapLength = (n + 7) / 8
        var out = [UInt8](repeating: 0, count: bitmapLength)
        out.reserveCapacity(bitmapLength + n * 10)
        var scratch = [UInt8](repeating: 0, count: 10)
        for p in 0..<n {
            let r = permutation.map { Int($0[p]) } ?? p
            guard let old = previous[r] else { continue }
            guard old <= ScaledDecimal.maxMagnitude, old >= -ScaledDecimal.maxMagnitude else {
                throw ChunkError(
                    .invalidInput, "previous value \(old) of row \(r) is outside ±\(ScaledDecimal.maxMagnitude)")
            }
            out[p >> 3] |= 1 << UInt8(p & 7)
            var length = 0
            scratch.withUnsafeMutableBufferPointer {
                putVarint(zigzagEncode(old &- values[r]), $0.baseAddress!, &length)
            }
            out.append(contentsOf: scratch[0..<length])
        }
        return out
    }
}

/// One encoded and compressed column block, ready for the directory.
private struct EncodedBlock {
    var name: String
    var encoding: ChunkFormat.Encoding
    var compression: ChunkFormat.Compression
    var required: Bool
    var rows: Int
    var uncompressedLength: Int
    var bytes: [UInt8]

    /// Compresses `raw` with zstd, or stores it as is when it is empty or zstd does not make it smaller.
    static func make(
        _ name: String, _ encoding: ChunkFormat.Encoding, rows: Int, required: Bool, _ raw: UnsafeRawBufferPointer,
        _ compressor: borrowing ZstdCompressor, _ level: Int32
    ) throws(ChunkError) -> EncodedBlock {
        var compression = ChunkFormat.Compression.none
        var bytes = [UInt8](raw)
        if raw.count > 0 {
            let compressed: [UInt8]
            do { compressed = try compressor.compress(raw, level: level) } catch {
                throw ChunkError(.zstd, "compressing column \(name): \(error.description)")
            }
            if compressed.count < raw.count {
                compression = .zstd
                bytes = compressed
            }
        }
        return EncodedBlock(
            name: name, encoding: encoding, compression: compression, required: required,
            rows: rows, uncompressedLength: raw.count, bytes: bytes)
    }
}
