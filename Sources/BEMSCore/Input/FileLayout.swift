/// The columns of one input file, read from its header line.
package struct FileLayout: Sendable, Equatable {
    /// The floor of the file.
    package var floor: Int
    /// Position of `Date` among the fields.
    package var dateField: Int
    /// For each field position: the sensor column, or `nil` for `Date`.
    package var fields: [SensorColumn?]
    /// Notes about columns that differ from the documented layout of the floor (not errors).
    package var warnings: [String]

    /// Number of fields a row must have.
    package var fieldCount: Int { fields.count }
    /// The data columns in file order.
    package var columns: [SensorColumn] { fields.compactMap { $0 } }

    /// Reads a header line.
    ///
    /// - Throws: ``HeaderError`` for an unknown or duplicated column, a missing `Date`, or a non-UTF-8 header.
    package init(header: UnsafeRawBufferPointer, floor: Int) throws(HeaderError) {
        guard let text = String(validating: header, as: UTF8.self) else {
            throw HeaderError(column: 1, message: "the header is not UTF-8 text", code: .invalidUTF8)
        }
        if text.utf8.contains(0) {
            throw HeaderError(
                column: 1, message: "the header contains a NUL byte (is this a CSV file?)", code: .nulByte)
        }
        var fields: [SensorColumn?] = []
        var dateField: Int?
        var seen: [String: Int] = [:]
        var column = 1
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            var name = String(raw)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast())
            }
            if let previous = seen[name] {
                throw HeaderError(
                    column: column, message: "column \"\(name)\" appears twice (first at column \(previous))")
            }
            seen[name] = column
            if name == "Date" {
                dateField = fields.count
                fields.append(nil)
            } else if let sensor = SensorColumn(header: name, floor: floor) {
                fields.append(sensor)
            } else {
                let shown = name.count > 60 ? String(name.prefix(60)) + "…" : name
                throw HeaderError(
                    column: column,
                    message:
                        "unknown column \"\(shown)\" (expected Date or zN_ACk(kW), zN_Light(kW), zN_Plug(kW), zN_S1(degC|RH%|lux))"
                )
            }
            column += raw.utf8.count + 1
        }
        guard let dateField else { throw HeaderError(column: 1, message: "the header has no Date column") }
        guard fields.count > 1 else { throw HeaderError(column: 1, message: "the header has no data columns") }
        var warnings: [String] = []
        if let expected = FloorSchema.header(floor: floor) {
            let actual = fields.map { $0?.header ?? "Date" }
            if actual != expected {
                let missing = expected.filter { !actual.contains($0) }
                let extra = actual.filter { !expected.contains($0) }
                warnings.append(
                    "columns differ from the documented floor \(floor) layout"
                        + (missing.isEmpty ? "" : "; missing: \(missing.joined(separator: ", "))")
                        + (extra.isEmpty ? "" : "; extra: \(extra.joined(separator: ", "))")
                        + (missing.isEmpty && extra.isEmpty ? " (order only)" : ""))
            }
        }
        self.floor = floor
        self.dateField = dateField
        self.fields = fields
        self.warnings = warnings
    }
}

/// A header problem: it stops the file.
package struct HeaderError: Error, Equatable, Sendable {
    /// 1-based byte column.
    package var column: Int
    package var message: String
    /// The reject code of the file's diagnostic: ``RejectCode/fieldCount`` for a wrong set of columns,
    /// ``RejectCode/invalidUTF8`` or ``RejectCode/nulByte`` for a header that is not text.
    package var code: RejectCode = .fieldCount
}
