/// A problem found in an input file, with its location.
///
/// Renders as `file:line:column: error: message`, the form compilers and editors parse. Lines and columns are 1-based;
/// the column counts bytes.
package struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    /// How bad the problem is.
    package enum Severity: String, Sendable {
        case error
        case warning
        case note
    }

    package var severity: Severity
    package var code: RejectCode
    package var file: String
    package var line: Int
    package var column: Int
    package var message: String

    package init(severity: Severity = .error, code: RejectCode, file: String, line: Int, column: Int, message: String) {
        self.severity = severity
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    package var description: String {
        "\(file):\(line):\(column): \(severity.rawValue): \(message) [\(code.rawValue)]"
    }
}

/// Why a record or a cell was rejected. The raw values appear in reports and dead-letter files.
package enum RejectCode: String, Sendable, Codable, CaseIterable, Comparable {
    /// The row has more or fewer fields than the header.
    case fieldCount = "field_count"
    /// The Date cell is not a valid `YYYY-MM-DD HH:MM:SS` time.
    case badTimestamp = "bad_timestamp"
    /// A numeric cell holds something other than a plain decimal number.
    case badNumber = "bad_number"
    /// A number has more than four significant decimals.
    case tooManyDecimals = "too_many_decimals"
    /// A number is outside DECIMAL(10,4) or outside the valid range of its equipment type.
    case outOfRange = "out_of_range"
    /// A quote character that does not enclose a whole field.
    case badQuote = "bad_quote"
    /// A NUL byte inside the line.
    case nulByte = "nul_byte"
    /// Bytes that are not UTF-8.
    case invalidUTF8 = "invalid_utf8"
    /// A line longer than the configured maximum.
    case lineTooLong = "line_too_long"
    /// The last line ends without a newline and has too few fields: the file was cut off.
    case truncatedLine = "truncated_line"

    package static func < (lhs: RejectCode, rhs: RejectCode) -> Bool { lhs.rawValue < rhs.rawValue }
}
