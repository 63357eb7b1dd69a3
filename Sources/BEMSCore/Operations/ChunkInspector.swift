import Foundation

/// Renders a chunk for people and for other tools: its header as text and its rows as CSV.
///
/// This keeps archived chunks usable without the pipeline's internals: `bems inspect CHUNK > rows.csv`.
package enum ChunkInspector {
    /// The CSV header line: the columns of `sensor_readings`, plus the dedupe columns when present.
    package static func csvHeader(_ header: ChunkHeader) -> String {
        var columns = ["timestamp", "sensor_id", "floor_number", "equipment_type", "reading_value", "unit", "status"]
        if header.hasActions { columns += ["action", "previous_value", "previous_status"] }
        return columns.joined(separator: ",")
    }

    /// A human description of the header.
    package static func describe(_ header: ChunkHeader, path: String, converter: LocalTimeConverter) -> String {
        var lines = [
            "chunk: \(path)",
            "format version: \(header.formatVersion)",
            "rows: \(header.rowCount)",
            "time range: \(formatTime(header.minTimestamp, converter)) .. \(formatTime(header.maxTimestamp, converter))",
            "bytes: \(header.totalLength)",
        ]
        for key in header.metadata.keys.sorted() { lines.append("meta \(key): \(header.metadata[key]!)") }
        lines.append("columns:")
        for c in header.columns {
            lines.append(
                "  \(c.name): encoding \(c.encoding), compression \(c.compression), rows \(c.rowCount), "
                    + "\(c.uncompressedLength) -> \(c.compressedLength) bytes")
        }
        lines.append("sensors:")
        for s in header.sensors {
            lines.append("  \(s.sensorID): \(s.count) readings, sum \(ScaledDecimal.format(s.valueSum))")
        }
        return lines.joined(separator: "\n")
    }

    /// Writes every row as a CSV line through `emit`, timestamps in the given zone with their offset (RFC 3339).
    package static func forEachCSVLine(_ data: ChunkData, converter: LocalTimeConverter, _ emit: (String) -> Void) {
        let described = data.sensorIDs.map { id -> (String, String, String) in
            guard let (floor, type) = SensorColumn.describe(sensorID: id) else { return ("", "", "") }
            return (String(floor), type.rawValue, type.unit)
        }
        for i in 0..<data.count {
            let sensor = Int(data.sensorIndexes[i])
            let (floor, type, unit) = described[sensor]
            var line =
                formatTime(data.timestamps[i], converter) + "," + data.sensorIDs[sensor] + "," + floor + ","
                + type + "," + ScaledDecimal.format(data.values[i]) + "," + unit + "," + data.statuses[i].label
            if let actions = data.actions {
                let previous = data.previousValues?[i].map(ScaledDecimal.format) ?? ""
                let previousStatus = data.previousStatuses?[i]?.label ?? ""
                line += "," + (actions[i] == .insert ? "insert" : "update") + "," + previous + "," + previousStatus
            }
            emit(line)
        }
    }

    /// RFC 3339 time in the converter's zone, e.g. `2019-01-01T08:00:00+07:00`.
    package static func formatTime(_ utc: Int64, _ converter: LocalTimeConverter) -> String {
        let local = converter.local(fromUTC: utc)
        let offset = local - utc
        let text = TimestampParser.format(localSeconds: local)
        let sign = offset < 0 ? "-" : "+"
        let minutes = abs(offset) / 60
        let hh = minutes / 60 < 10 ? "0\(minutes / 60)" : "\(minutes / 60)"
        let mm = minutes % 60 < 10 ? "0\(minutes % 60)" : "\(minutes % 60)"
        return text.replacingOccurrences(of: " ", with: "T") + (offset == 0 ? "Z" : "\(sign)\(hh):\(mm)")
    }
}
