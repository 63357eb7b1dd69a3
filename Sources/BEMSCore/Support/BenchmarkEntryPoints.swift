/// A small public surface for the nested benchmark package (`Benchmarks/`), which cannot see `package` symbols.
///
/// Each function runs one hot path of the pipeline on in-memory or temporary data and returns a count, so the
/// benchmark can `blackHole` it.
public enum BenchmarkEntryPoints {
    /// Generated CSV text of one floor: `days` days from 2019-03-04.
    public static func sampleCSV(floor: Int, days: Int, seed: UInt64 = 7) throws -> [UInt8] {
        let generator = SampleGenerator(
            configuration: SampleConfiguration(
                start: CivilDate(year: 2019, month: 3, day: 4)!, days: days, floors: [floor], seed: seed))
        return try generator.render().first!.bytes
    }

    /// Scans a CSV file as validate does; returns the readings found.
    public static func scan(path: String, floor: Int) throws -> Int {
        var readings = 0
        _ = try FloorFileScanner.scan(InputFile(path: path, floor: floor), config: PipelineConfig()) { row, _ in
            readings += row.readings
        }
        return readings
    }

    /// Parses decimal cells; returns their sum.
    public static func parseDecimals(_ cells: [String]) -> Int64 {
        var sum: Int64 = 0
        for cell in cells { sum &+= (try? DecimalParser.parse(cell)) ?? 0 }
        return sum
    }

    /// Encoded chunks of a CSV file, one per day, as normalize writes them (without the file writes).
    public static func encodeChunks(path: String, floor: Int) throws -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var data = ChunkData()
        var day = Int64.min
        _ = try FloorFileScanner.scan(
            InputFile(path: path, floor: floor), config: PipelineConfig(),
            header: { data.sensorIDs = $0.columns.map(\.sensorID) }
        ) { row, _ in
            guard row.rowError == nil else { return }
            let d = row.localTime / 86_400
            if d != day, data.count > 0 {
                chunks.append(try ChunkWriter.encode(data))
                data = ChunkData(sensorIDs: data.sensorIDs)
            }
            day = d
            for c in 0..<row.kinds.count where row.kinds[c] == .normal || row.kinds[c] == .anomaly {
                data.append(sensorIndex: UInt32(c), timestamp: row.utcTime, value: row.values[c], status: .normal)
            }
        }
        if data.count > 0 { chunks.append(try ChunkWriter.encode(data)) }
        return chunks
    }

    /// Decodes chunks; returns the readings.
    public static func decodeChunks(_ chunks: [[UInt8]]) throws -> Int {
        var total = 0
        for chunk in chunks { total += try ChunkReader.decode(chunk).data.count }
        return total
    }
}
