/// Column decoding for ``ChunkReader``: decompress each block, undo its encoding, and check it against the header.
extension ChunkReader {
    /// One sensor run in canonical order: rows `start..<start + count` belong to `sensor`.
    private struct Run {
        var sensor: Int
        var start: Int
        var count: Int
    }

    /// Decodes the columns described by `layout`; the bytes were already verified by `parseLayout`.
    static func decodeColumns(
        _ raw: RawSpan, _ layout: Layout, _ decompressor: borrowing ZstdDecompressor
    ) throws(ChunkError) -> ChunkData {
        let header = layout.header
        let n = header.rowCount
        let sensorCount = header.sensors.count

        // Sensor runs.
        let sensorInfo = layout.known[ChunkFormat.Column.sensor]!
        let runBytes = try loadBlock(raw, sensorInfo, maxLength: sensorCount * 20, decompressor)
        var runs: [Run] = []
        runs.reserveCapacity(min(sensorCount, n))
        var sensorIndexes = [UInt32](repeating: 0, count: n)
        var failure: (String, Int)?
        runBytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return }
            var i = 0
            var position = 0
            var previous = -1
            while i < buffer.count {
                let at = i
                guard let s = getVarint(base, &i, buffer.count), let c = getVarint(base, &i, buffer.count) else {
                    failure = ("malformed varint", at)
                    return
                }
                guard s < UInt64(sensorCount), Int(s) > previous, c >= 1,
                    c == UInt64(header.sensors[Int(s)].count), c <= UInt64(n - position)
                else {
                    failure = ("run (sensor \(s), \(c) rows) disagrees with the header", at)
                    return
                }
                runs.append(Run(sensor: Int(s), start: position, count: Int(c)))
                previous = Int(s)
                position += Int(c)
            }
        }
        if let failure { throw columnError(sensorInfo, failure) }
        guard runs.reduce(0, { $0 + $1.count }) == n else {
            throw ChunkError(.corrupt, "sensor runs cover fewer rows than the header's \(n)", offset: sensorInfo.offset)
        }
        sensorIndexes.withUnsafeMutableBufferPointer { indexes in
            for run in runs {
                let s = UInt32(truncatingIfNeeded: run.sensor)
                for p in run.start..<(run.start + run.count) { indexes[p] = s }
            }
        }

        // Timestamps and values.
        let timeInfo = layout.known[ChunkFormat.Column.timestamp]!
        let timestamps = try decodeRunDelta(
            try loadBlock(raw, timeInfo, maxLength: n * 10, decompressor), runs: runs, rows: n, timeInfo)
        let valueInfo = layout.known[ChunkFormat.Column.value]!
        let values = try decodeRunDelta(
            try loadBlock(raw, valueInfo, maxLength: n * 10, decompressor), runs: runs, rows: n, valueInfo)
        try checkStatistics(header, runs: runs, timestamps: timestamps, values: values, timeInfo, valueInfo)

        // Status and optional columns.
        let statusInfo = layout.known[ChunkFormat.Column.status]!
        let statusBytes = try loadBlock(raw, statusInfo, maxLength: n, decompressor)
        let statuses = try decodeStatuses(statusBytes, rows: n, statusInfo)

        var actions: [ChunkAction]?
        if let info = layout.known[ChunkFormat.Column.action] {
            let bytes = try loadBlock(raw, info, maxLength: n, decompressor)
            guard bytes.count == n else { throw columnError(info, ("length \(bytes.count) for \(n) rows", 0)) }
            var decoded: [ChunkAction] = []
            decoded.reserveCapacity(n)
            for (i, byte) in bytes.enumerated() {
                guard let action = ChunkAction(rawValue: byte) else {
                    throw columnError(info, ("unknown action \(byte)", i))
                }
                decoded.append(action)
            }
            actions = decoded
        }
        var previousValues: [Int64?]?
        if let info = layout.known[ChunkFormat.Column.previousValue] {
            let bytes = try loadBlock(raw, info, maxLength: (n + 7) / 8 + n * 10, decompressor)
            previousValues = try decodePreviousValues(bytes, values: values, info)
        }
        var previousStatuses: [ReadingStatus?]?
        if let info = layout.known[ChunkFormat.Column.previousStatus] {
            let bytes = try loadBlock(raw, info, maxLength: n, decompressor)
            guard bytes.count == n else { throw columnError(info, ("length \(bytes.count) for \(n) rows", 0)) }
            var decoded: [ReadingStatus?] = []
            decoded.reserveCapacity(n)
            for (i, byte) in bytes.enumerated() {
                if byte == ChunkFormat.nullStatus {
                    decoded.append(nil)
                } else if let status = ReadingStatus(rawValue: byte) {
                    decoded.append(status)
                } else {
                    throw columnError(info, ("unknown status \(byte)", i))
                }
            }
            previousStatuses = decoded
        }

        return ChunkData(
            sensorIDs: header.sensors.map(\.sensorID), timestamps: timestamps, sensorIndexes: sensorIndexes,
            values: values, statuses: statuses, actions: actions, previousValues: previousValues,
            previousStatuses: previousStatuses, metadata: header.metadata)
    }

    // MARK: - Blocks

    static func makeDecompressor() throws(ChunkError) -> ZstdDecompressor {
        do { return try ZstdDecompressor() } catch { throw ChunkError(.zstd, error.description) }
    }

    /// Returns the decoded bytes of a column block, refusing an uncompressed length above `maxLength`.
    private static func loadBlock(
        _ raw: RawSpan, _ info: ChunkColumnInfo, maxLength: Int, _ decompressor: borrowing ZstdDecompressor
    ) throws(ChunkError) -> [UInt8] {
        guard info.uncompressedLength <= maxLength else {
            throw ChunkError(
                .corrupt,
                "column \(info.name) claims \(info.uncompressedLength) bytes, at most "
                    + "\(maxLength) possible", offset: info.offset)
        }
        let block = raw.extracting(info.offset..<(info.offset + info.compressedLength))
        switch ChunkFormat.Compression(rawValue: info.compression) {
        case .none?:
            guard info.compressedLength == info.uncompressedLength else {
                throw ChunkError(.corrupt, "stored column \(info.name) has two different lengths", offset: info.offset)
            }
            return block.withUnsafeBytes { [UInt8]($0) }
        case .zstd?:
            let result: Result<[UInt8], ZstdError> = block.withUnsafeBytes { buffer in
                do throws(ZstdError) {
                    return .success(
                        try decompressor.decompress(
                            buffer, expectedSize: info.uncompressedLength, maxSize: maxLength))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(let bytes): return bytes
            case .failure(let error):
                throw ChunkError(.zstd, "column \(info.name): \(error.description)", offset: info.offset)
            }
        case nil:
            throw ChunkError(.unsupportedVersion, "unknown compression \(info.compression)", offset: info.offset)
        }
    }

    private static func columnError(_ info: ChunkColumnInfo, _ failure: (String, Int)) -> ChunkError {
        ChunkError(.corrupt, "column \(info.name), decoded byte \(failure.1): \(failure.0)", offset: info.offset)
    }

    // MARK: - Encodings

    /// Undoes `runDeltaVarint`: per sensor run, the first zigzag varint is absolute, the rest are deltas.
    private static func decodeRunDelta(
        _ bytes: [UInt8], runs: [Run], rows n: Int, _ info: ChunkColumnInfo
    ) throws(ChunkError) -> [Int64] {
        var output = [Int64](repeating: 0, count: n)
        var failure: (String, Int)?
        bytes.withUnsafeBufferPointer { buffer in
            output.withUnsafeMutableBufferPointer { out in
                guard n > 0 else {
                    if buffer.count != 0 { failure = ("bytes for an empty column", 0) }
                    return
                }
                guard let base = buffer.baseAddress else {
                    failure = ("empty column for \(n) rows", 0)
                    return
                }
                let end = buffer.count
                var i = 0
                for run in runs {
                    var previous: Int64 = 0
                    for p in run.start..<(run.start + run.count) {
                        guard let u = getVarint(base, &i, end) else {
                            failure = ("malformed or missing varint for row \(p)", i)
                            return
                        }
                        previous = previous &+ zigzagDecode(u)
                        out[p] = previous
                    }
                }
                if i != end { failure = ("\(end - i) bytes left over", i) }
            }
        }
        if let failure { throw columnError(info, failure) }
        return output
    }

    /// Checks decoded timestamps and values against the header: order, ranges, per-sensor stats and time range.
    private static func checkStatistics(
        _ header: ChunkHeader, runs: [Run], timestamps: [Int64], values: [Int64], _ timeInfo: ChunkColumnInfo,
        _ valueInfo: ChunkColumnInfo
    ) throws(ChunkError) {
        var minTime = Int64.max
        var maxTime = Int64.min
        let limit = ScaledDecimal.maxMagnitude
        for run in runs {
            let stats = header.sensors[run.sensor]
            let range = run.start..<(run.start + run.count)
            let (ordered, first, last): (Bool, Int64, Int64) = timestamps.withUnsafeBufferPointer { ts in
                var ordered = true
                for p in range.dropFirst() where ts[p] < ts[p - 1] { ordered = false }
                return (ordered, ts[range.lowerBound], ts[range.upperBound - 1])
            }
            guard ordered, first == stats.minTimestamp, last == stats.maxTimestamp else {
                throw ChunkError(
                    .corrupt, "timestamps of sensor \(stats.sensorID) disagree with the header",
                    offset: timeInfo.offset)
            }
            let (sum, inRange): (Int64, Bool) = values.withUnsafeBufferPointer { vs in
                var sum: Int64 = 0
                var inRange = true
                for p in range {
                    let v = vs[p]
                    if v > limit || v < -limit { inRange = false }
                    sum &+= v
                }
                return (sum, inRange)
            }
            guard inRange, sum == stats.valueSum else {
                throw ChunkError(
                    .corrupt, "values of sensor \(stats.sensorID) disagree with the header",
                    offset: valueInfo.offset)
            }
            minTime = min(minTime, first)
            maxTime = max(maxTime, last)
        }
        if runs.isEmpty { (minTime, maxTime) = (0, 0) }
        for stats in header.sensors where stats.count == 0 {
            guard stats.valueSum == 0, stats.minTimestamp == 0, stats.maxTimestamp == 0 else {
                throw ChunkError(
                    .corrupt, "sensor \(stats.sensorID) has no rows but non-zero stats",
                    offset: timeInfo.offset)
            }
        }
        guard minTime == header.minTimestamp, maxTime == header.maxTimestamp else {
            throw ChunkError(.corrupt, "time range disagrees with the header", offset: timeInfo.offset)
        }
    }

    /// Undoes `uint8` for the status column, rejecting unknown status codes.
    private static func decodeStatuses(
        _ bytes: [UInt8], rows n: Int, _ info: ChunkColumnInfo
    ) throws(ChunkError) -> [ReadingStatus] {
        guard bytes.count == n else { throw columnError(info, ("length \(bytes.count) for \(n) rows", 0)) }
        var statuses: [ReadingStatus] = []
        statuses.reserveCapacity(n)
        var bad = -1
        bytes.withUnsafeBufferPointer { buffer in
            for i in 0..<n {
                guard let status = ReadingStatus(rawValue: buffer[i]) else {
                    bad = i
                    return
                }
                statuses.append(status)
            }
        }
        if bad >= 0 { throw columnError(info, ("unknown status \(bytes[bad])", bad)) }
        return statuses
    }

    /// Undoes `nullableInt64Delta`: validity bitmap, then zigzag varints of (previous − value) for present rows.
    private static func decodePreviousValues(
        _ bytes: [UInt8], values: [Int64], _ info: ChunkColumnInfo
    ) throws(ChunkError) -> [Int64?] {
        let n = values.count
        let bitmapLength = (n + 7) / 8
        guard bytes.count >= bitmapLength else {
            throw columnError(info, ("shorter than its \(bitmapLength)-byte bitmap", 0))
        }
        if n % 8 != 0, bitmapLength > 0, bytes[bitmapLength - 1] >> UInt8(n % 8) != 0 {
            throw columnError(info, ("padding bits of the bitmap are set", bitmapLength - 1))
        }
        var output: [Int64?] = []
        output.reserveCapacity(n)
        var failure: (String, Int)?
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var i = bitmapLength
            for p in 0..<n {
                if base[p >> 3] & (1 << UInt8(p & 7)) == 0 {
                    output.append(nil)
                    continue
                }
                guard let u = getVarint(base, &i, buffer.count) else {
                    failure = ("malformed or missing varint for row \(p)", i)
                    return
                }
                let previous = values[p] &+ zigzagDecode(u)
                guard previous <= ScaledDecimal.maxMagnitude, previous >= -ScaledDecimal.maxMagnitude else {
                    failure = ("previous value out of range for row \(p)", i)
                    return
                }
                output.append(previous)
            }
            if i != buffer.count { failure = ("\(buffer.count - i) bytes left over", i) }
        }
        if let failure { throw columnError(info, failure) }
        return output
    }
}
