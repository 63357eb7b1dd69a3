import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// Size and speed measurements; they print figures and only assert sanity. Run with `BEMS_CHUNK_BENCH=1`, ideally
/// `swift test -c release -Xswiftc -enable-testing --filter ChunkMeasurementTests`.
@Suite(.enabled(if: getenv("BEMS_CHUNK_BENCH") != nil, "set BEMS_CHUNK_BENCH=1 to measure"), .serialized)
struct ChunkMeasurementTests {
    static func zstdSize(_ bytes: [UInt8], level: Int32 = 3) throws -> Int {
        try Zstd.compress(bytes, level: level).count
    }

    /// Raw little-endian Int64s.
    static func plain(_ values: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 8)
        for v in values { out.appendLittleEndian(v) }
        return out
    }

    /// Zigzag varints of `values[i] - values[i-1]` (first from 0), restarting where `restart` says.
    static func deltaVarint(_ values: [Int64], restart: (Int) -> Bool, order: Int = 1) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 10 + 10)
        var length = 0
        var previous: Int64 = 0
        var previousDelta: Int64 = 0
        out.withUnsafeMutableBufferPointer { buffer in
            for (i, v) in values.enumerated() {
                if restart(i) {
                    previous = 0
                    previousDelta = 0
                }
                let delta = v &- previous
                let encoded = order == 2 && !restart(i) ? delta &- previousDelta : delta
                putVarint(zigzagEncode(encoded), buffer.baseAddress!, &length)
                previous = v
                previousDelta = delta
            }
        }
        return Array(out.prefix(length))
    }

    @Test func bytesPerReadingOnRealisticData() throws {
        let data = ChunkSamples.realistic(sensors: 36, minutes: 1440)
        let n = Double(data.count)
        let bytes = try ChunkWriter.encode(data)
        let header = try ChunkReader.readHeader(bytes)
        print(
            "realistic 36 x 1440 = \(data.count) readings: \(bytes.count) bytes, "
                + "\(String(format3(Double(bytes.count) / n))) bytes/reading")
        var columnTotal = 0
        for column in header.columns {
            columnTotal += column.compressedLength
            print(
                "  column \(column.name): \(column.uncompressedLength) -> \(column.compressedLength) bytes "
                    + "(\(format3(Double(column.compressedLength) / n)) B/reading)")
        }
        print("  header+directory+preamble+footer: \(bytes.count - columnTotal) bytes")
        for level: Int32 in [1, 3, 9, 19] {
            let size = try ChunkWriter.encode(data, level: level).count
            print("  level \(level): \(size) bytes, \(format3(Double(size) / n)) B/reading")
        }

        // Alternatives, on the canonical order.
        let canonical = data.canonicalized()
        let restart: (Int) -> Bool = { $0 == 0 || canonical.sensorIndexes[$0] != canonical.sensorIndexes[$0 - 1] }
        let alternatives: [(String, [UInt8])] = [
            ("timestamp plain int64", Self.plain(canonical.timestamps)),
            ("timestamp run-delta varint (chosen)", Self.deltaVarint(canonical.timestamps, restart: restart)),
            ("timestamp delta-of-delta varint", Self.deltaVarint(canonical.timestamps, restart: restart, order: 2)),
            ("value plain int64", Self.plain(canonical.values)),
            ("value run-delta varint (chosen)", Self.deltaVarint(canonical.values, restart: restart)),
            ("value plain varint (no delta)", Self.deltaVarint(canonical.values, restart: { _ in true })),
            ("value delta-of-delta varint", Self.deltaVarint(canonical.values, restart: restart, order: 2)),
        ]
        for (name, raw) in alternatives {
            let size = try Self.zstdSize(raw)
            print("  alt \(name): \(raw.count) -> \(size) bytes (\(format3(Double(size) / n)) B/reading)")
        }
        // Row order matters too: the input (timestamp, column) order instead of canonical.
        let inputOrderValues = try Self.zstdSize(Self.deltaVarint(data.values, restart: { _ in true }))
        print("  alt value varint in input order: \(inputOrderValues) bytes")
        #expect(Double(bytes.count) / n < 2)

        if let path = getenv("BEMS_CHUNK_CSV").map({ String(cString: $0) }) {
            var csv = Array("sensor_id,ts,value,status\n".utf8)
            for i in 0..<data.count {
                let line =
                    "\(data.sensorIDs[Int(data.sensorIndexes[i])]),\(data.timestamps[i]),"
                    + "\(ScaledDecimal.format(data.values[i])),\(data.statuses[i].label)\n"
                csv.append(contentsOf: line.utf8)
            }
            try ChunkFile.write(csv, to: path)
            print("  wrote long-row CSV to \(path)")
        }
    }

    @Test func encodeAndDecodeSpeed() throws {
        // A month of one floor: 36 sensors x 43 200 minutes = 1.56 M readings, in CSV (timestamp, column) order.
        let big = ChunkSamples.realistic(sensors: 36, minutes: 1440 * 30, seed: 7)
        let day = ChunkSamples.realistic(sensors: 36, minutes: 1440, seed: 8)
        let clock = ContinuousClock()
        func rate(_ readings: Int, _ duration: Duration) -> String {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
            return "\(format3(Double(readings) / seconds / 1e6)) M readings/s"
        }
        var encoded: [UInt8] = []
        for round in 0..<3 {
            let e = clock.measure { encoded = try! ChunkWriter.encode(big) }
            var decoded: ChunkData?
            let d = clock.measure { decoded = try! ChunkReader.decode(encoded).data }
            let canonicalInput = big.canonicalized()
            let e2 = clock.measure { _ = try! ChunkWriter.encode(canonicalInput) }
            print(
                "round \(round) month chunk (\(big.count) readings, \(encoded.count) bytes): encode \(rate(big.count, e)), "
                    + "encode canonical input \(rate(big.count, e2)), decode \(rate(big.count, d))")
            #expect(decoded?.count == big.count)
        }
        let iterations = 30
        var dayBytes: [UInt8] = []
        let e = clock.measure { for _ in 0..<iterations { dayBytes = try! ChunkWriter.encode(day) } }
        let d = clock.measure { for _ in 0..<iterations { _ = try! ChunkReader.decode(dayBytes) } }
        let compressor = try ZstdCompressor()
        let decompressor = try ZstdDecompressor()
        let e3 = clock.measure {
            for _ in 0..<iterations { dayBytes = try! ChunkWriter.encode(day, using: compressor) }
        }
        let d3 = clock.measure {
            for _ in 0..<iterations { _ = try! ChunkReader.decode(dayBytes, using: decompressor) }
        }
        print(
            "day chunk x\(iterations), reused zstd contexts: encode \(rate(day.count * iterations, e3)), decode "
                + "\(rate(day.count * iterations, d3))")
        let h = clock.measure { for _ in 0..<iterations { _ = try! ChunkReader.readHeader(dayBytes) } }
        print(
            "day chunk x\(iterations): encode \(rate(day.count * iterations, e)), decode "
                + "\(rate(day.count * iterations, d)), readHeader \(h / iterations) per chunk")
        let sorting = clock.measure {
            for _ in 0..<iterations {
                _ = ChunkOrdering.order(sensorIndexes: day.sensorIndexes, timestamps: day.timestamps, sensorCount: 36)
            }
        }
        print("  of which ordering: \(rate(day.count * iterations, sorting))")
    }
}

func format3(_ x: Double) -> String {
    let scaled = (x * 1000).rounded()
    let whole = Int(scaled) / 1000
    let fraction = abs(Int(scaled) % 1000)
    return "\(whole)." + String(repeating: "0", count: 3 - String(fraction).count) + String(fraction)
}
