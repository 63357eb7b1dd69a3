/// What one data cell of a row turned out to be.
package enum CellKind: UInt8, Sendable {
    /// Empty (or `NaN`): a missing reading, not an error.
    case missing = 0
    /// A reading inside the plausible range.
    case normal = 1
    /// A valid reading outside the plausible range: kept with status `anomaly`.
    case anomaly = 2
    /// A cell that can't be a reading (see ``CellError``).
    case rejected = 3
}

/// A rejected cell, or a rejected row when it concerns the whole line.
package struct CellError: Sendable, Equatable {
    package var code: RejectCode
    /// 1-based byte column in the line.
    package var column: Int
    /// The sensor column concerned, or `nil` for a whole-row problem.
    package var sensorID: String?
    package var message: String
}

/// One parsed row, reused from line to line so parsing allocates nothing per row.
package struct ParsedRow {
    /// 1-based line number in the file.
    package var lineNumber = 0
    /// Wall-clock seconds since 1970-01-01 in the building's zone.
    package var localTime: Int64 = 0
    /// Unix seconds (UTC).
    package var utcTime: Int64 = 0
    /// Set when the whole row is rejected; the cells are then meaningless.
    package var rowError: CellError?
    /// Per data column (``FileLayout/columns`` order): the scaled value, meaningful for normal and anomaly cells.
    package var values: [Int64] = []
    /// Per data column: what the cell is.
    package var kinds: [CellKind] = []
    /// Details of rejected cells.
    package var cellErrors: [CellError] = []
    /// Cells with a reading (normal or anomaly).
    package var readings = 0
    /// Cells that are empty or `NaN`.
    package var missing = 0
    /// Cells that spell `NaN` (counted within ``missing``).
    package var nanCells = 0
}

/// Splits a wide CSV line into fields and turns them into readings, applying the ranges of pipeline.json.
///
/// Hand-written for speed: it runs on every line of the dataset, splits fields with one pass over the bytes and
/// parses numbers in place.
package struct WideRowParser {
    package let layout: FileLayout
    private var converter: LocalTimeConverter
    /// Per data column: valid range, plausible range.
    private let validRanges: [ClosedRange<Int64>]
    private let plausibleRanges: [ClosedRange<Int64>]
    /// Per field: data column index, or -1 for Date.
    private let columnOfField: [Int]

    package init(layout: FileLayout, config: PipelineConfig) throws {
        self.layout = layout
        self.converter = try LocalTimeConverter(identifier: config.timeZone)
        let columns = layout.columns
        validRanges = columns.map { config.ranges[$0.equipmentType]!.valid }
        plausibleRanges = columns.map { config.ranges[$0.equipmentType]!.plausible }
        var index = 0
        columnOfField = layout.fields.map { field in
            guard field != nil else { return -1 }
            defer { index += 1 }
            return index
        }
    }

    /// Parses one line into `row`.
    package mutating func parse(_ line: Line, into row: inout ParsedRow) {
        let columnCount = validRanges.count
        row.lineNumber = line.number
        row.rowError = nil
        row.cellErrors.removeAll(keepingCapacity: true)
        row.readings = 0
        row.missing = 0
        row.nanCells = 0
        if row.values.count != columnCount {
            row.values = Array(repeating: 0, count: columnCount)
            row.kinds = Array(repeating: .missing, count: columnCount)
        }
        if let length = line.overlongLength {
            row.rowError = CellError(
                code: .lineTooLong, column: 1, sensorID: nil,
                message: "line is \(length) bytes long, over the limit of \(line.bytes.count) (maxLineBytes)")
            return
        }
        // Work on the cell arrays through buffers moved out of `row`: no uniqueness check or retain per cell.
        var values: [Int64] = []
        var kinds: [CellKind] = []
        swap(&values, &row.values)
        swap(&kinds, &row.kinds)
        values.withUnsafeMutableBufferPointer { values in
            kinds.withUnsafeMutableBufferPointer { kinds in
                parseFields(line, values: values, kinds: kinds, row: &row)
            }
        }
        swap(&values, &row.values)
        swap(&kinds, &row.kinds)
    }

    private mutating func parseFields(
        _ line: Line, values: UnsafeMutableBufferPointer<Int64>, kinds: UnsafeMutableBufferPointer<CellKind>,
        row: inout ParsedRow
    ) {
        let b = line.bytes
        let n = b.count
        let expected = layout.fieldCount
        var pos = 0
        var field = 0
        var sawDate = false
        while true {
            let fieldStart = pos
            var contentStart = pos
            var contentEnd: Int
            if pos < n, b[pos] == UInt8(ascii: "\"") {
                var j = pos + 1
                while j < n {
                    if b[j] == UInt8(ascii: "\"") {
                        if j + 1 < n, b[j + 1] == UInt8(ascii: "\"") {
                            j += 2
                            continue
                        }
                        break
                    }
                    j += 1
                }
                guard j < n else {
                    row.rowError = CellError(
                        code: .badQuote, column: fieldStart + 1, sensorID: nil,
                        message: "quote opened here is never closed")
                    return
                }
                contentStart = pos + 1
                contentEnd = j
                pos = j + 1
                if pos < n, b[pos] != UInt8(ascii: ",") {
                    row.rowError = CellError(
                        code: .badQuote, column: pos + 1, sensorID: nil, message: "text after a closing quote")
                    return
                }
            } else {
                // Fast path for the common cell, a plain decimal within range: parsed while finding its end, in
                // one pass. Anything else (empty, errors, leading zeros, trailing zeros past 4 places) falls through
                // to the general path below, which gives the same values and the located errors.
                if field < expected, case let column = columnOfField[field], column >= 0,
                    let (value, end) = Self.plainDecimal(b, from: pos, to: n), validRanges[column].contains(value)
                {
                    values[column] = value
                    kinds[column] = plausibleRanges[column].contains(value) ? .normal : .anomaly
                    row.readings += 1
                    pos = end
                    field += 1
                    if pos >= n { break }
                    pos += 1
                    continue
                }
                while pos < n, b[pos] != UInt8(ascii: ",") { pos += 1 }
                contentEnd = pos
            }
            if field < expected {
                let column = columnOfField[field]
                if column < 0 {
                    sawDate = true
                    do throws(TimestampParseError) {
                        let local = try TimestampParser.parse(b, from: contentStart, to: contentEnd)
                        row.localTime = local
                        row.utcTime = converter.utc(fromLocal: local)
                    } catch {
                        row.rowError = CellError(
                            code: .badTimestamp, column: contentStart + error.offset + 1, sensorID: nil,
                            message: error.message)
                    }
                } else {
                    parseCell(b, contentStart, contentEnd, column: column, values: values, kinds: kinds, row: &row)
                }
            }
            field += 1
            if pos >= n { break }
            pos += 1  // the comma
        }
        if field != expected {
            if !line.terminated, field < expected {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<min(n, 40)]), as: UTF8.self)
                row.rowError = CellError(
                    code: .truncatedLine, column: n + 1, sensorID: nil,
                    message:
                        "last line \"\(text)\" ends without a newline after \(field) of \(expected) fields: the file was cut off"
                )
            } else {
                row.rowError = CellError(
                    code: .fieldCount, column: n + 1, sensorID: nil,
                    message: "expected \(expected) fields, found \(field)")
            }
        } else if !sawDate, row.rowError == nil {
            row.rowError = CellError(code: .badTimestamp, column: 1, sensorID: nil, message: "no Date")
        }
    }

    @inline(__always)
    private func parseCell(
        _ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, column: Int,
        values: UnsafeMutableBufferPointer<Int64>, kinds: UnsafeMutableBufferPointer<CellKind>, row: inout ParsedRow
    ) {
        if start == end {
            kinds[column] = .missing
            row.missing += 1
            return
        }
        do throws(NumberParseError) {
            let value = try DecimalParser.parse(b, from: start, to: end)
            guard validRanges[column].contains(value) else {
                let sensor = layout.columns[column]
                let range = validRanges[column]
                kinds[column] = .rejected
                row.cellErrors.append(
                    CellError(
                        code: .outOfRange, column: start + 1, sensorID: sensor.sensorID,
                        message:
                            "\(ScaledDecimal.format(value)) \(sensor.equipmentType.unit) is outside the valid range "
                            + "[\(ScaledDecimal.format(range.lowerBound)), \(ScaledDecimal.format(range.upperBound))] "
                            + "of \(sensor.equipmentType.rawValue) (column \(sensor.header))"))
                return
            }
            values[column] = value
            kinds[column] = plausibleRanges[column].contains(value) ? .normal : .anomaly
            row.readings += 1
        } catch {
            if Self.isNaN(b, start, end) {
                kinds[column] = .missing
                row.missing += 1
                row.nanCells += 1
                return
            }
            let sensor = layout.columns[column]
            kinds[column] = .rejected
            row.cellErrors.append(
                CellError(
                    code: error.code, column: start + error.offset + 1, sensorID: sensor.sensorID,
                    message: "\(error.message) (column \(sensor.header))"))
        }
    }

    /// Powers of ten that scale 0–4 decimal places to 4.
    private static let scaleUp: (Int64, Int64, Int64, Int64, Int64) = (10_000, 1_000, 100, 10, 1)

    /// Parses `[-]digits[.digits]` up to the next comma or `end`, at most 6 whole and 4 decimal digits.
    ///
    /// - Returns: The scaled value and the position of the comma (or `end`), or `nil` for anything else.
    @inline(__always)
    private static func plainDecimal(_ b: UnsafeRawBufferPointer, from start: Int, to end: Int) -> (Int64, Int)? {
        var i = start
        var negative = false
        if i < end, b[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var whole: Int64 = 0
        let wholeStart = i
        while i < end {
            let d = b[i] &- UInt8(ascii: "0")
            guard d < 10 else { break }
            whole = whole &* 10 &+ Int64(d)
            i += 1
        }
        let wholeDigits = i - wholeStart
        guard wholeDigits <= 6 else { return nil }
        var fraction: Int64 = 0
        var places = 0
        if i < end, b[i] == UInt8(ascii: ".") {
            i += 1
            while i < end {
                let d = b[i] &- UInt8(ascii: "0")
                guard d < 10 else { break }
                guard places < 4 else { return nil }
                fraction = fraction &* 10 &+ Int64(d)
                places += 1
                i += 1
            }
        }
        guard wholeDigits + places > 0, i == end || b[i] == UInt8(ascii: ",") else { return nil }
        let factor: Int64
        switch places {
        case 0: factor = scaleUp.0
        case 1: factor = scaleUp.1
        case 2: factor = scaleUp.2
        case 3: factor = scaleUp.3
        default: factor = scaleUp.4
        }
        let magnitude = whole &* 10_000 &+ fraction &* factor
        return (negative ? -magnitude : magnitude, i)
    }

    /// `NaN` in any case: how pandas and R sometimes write a missing value. Treated as an empty cell.
    private static func isNaN(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Bool {
        guard end - start == 3 else { return false }
        return b[start] | 0x20 == UInt8(ascii: "n") && b[start + 1] | 0x20 == UInt8(ascii: "a")
            && b[start + 2] | 0x20 == UInt8(ascii: "n")
    }
}
