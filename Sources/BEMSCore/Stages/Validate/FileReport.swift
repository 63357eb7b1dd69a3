/// The validation result of one input file, as written to `report.json`.
package struct FileReport: Codable, Equatable, Sendable {
    package var file: String
    package var path: String
    package var floor: Int
    package var sha256: String = ""
    package var bytes = 0
    /// Data lines (the header excluded).
    package var rows = 0
    /// Cells holding a valid reading (normal or anomaly).
    package var readings = 0
    /// Empty cells (missing readings), `NaN` cells included.
    package var emptyCells = 0
    /// Cells spelled `NaN`, counted as empty.
    package var nanCells = 0
    /// Rows whose timestamp is present but every value is empty.
    package var allEmptyRows = 0
    /// Readings outside the plausible range, kept with status `anomaly`.
    package var anomalies = 0
    /// Rows rejected whole, by reject code.
    package var rejectedRows: [String: Int] = [:]
    /// Single cells rejected (the rest of their row is kept), by reject code.
    package var rejectedCells: [String: Int] = [:]
    /// Rows with at least one rejection (whole row or any cell): the basis of the threshold.
    package var rejectedRecords = 0
    /// `rejectedRecords / rows`.
    package var rejectedShare = 0.0
    /// First and last timestamp seen, local time `YYYY-MM-DD HH:MM:SS`.
    package var firstTimestamp: String?
    package var lastTimestamp: String?
    /// Minutes between the first and last timestamp that have no row.
    package var missingMinutes = 0
    /// Rows whose minute already appeared earlier in the file.
    package var duplicateTimestamps = 0
    /// Rows whose timestamp is earlier than the row before.
    package var backwardSteps = 0
    /// True when the file started with a UTF-8 byte-order mark (accepted).
    package var hadBOM = false
    /// Notes that are not errors (e.g. columns that differ from the documented layout).
    package var warnings: [String] = []
    /// Set when the header was unusable and the file was skipped.
    package var headerError: String?
    /// Within the threshold and no header error.
    package var passed = false
}
