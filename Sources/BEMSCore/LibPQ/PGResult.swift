/// The outcome of one command: its rows as text, copied out of libpq, and the command tag.
///
/// A value type: the libpq `PGresult` is cleared as soon as this is built, so a `PGResult` can be kept, passed and
/// compared freely. Values are in PostgreSQL text format; `nil` is SQL NULL.
package struct PGResult: Sendable, Equatable {
    /// The column names, in order.
    package let columns: [String]
    /// The rows; each has `columns.count` values.
    package let rows: [[String?]]
    /// The command tag, for example `INSERT 0 3` or `SELECT 1`.
    package let commandStatus: String
    /// The number of rows the command affected (`PQcmdTuples`), or `nil` when the command reports none.
    package let affectedRows: Int?

    /// Creates a result (used by ``PGConnection`` and by tests).
    package init(columns: [String], rows: [[String?]], commandStatus: String, affectedRows: Int?) {
        self.columns = columns
        self.rows = rows
        self.commandStatus = commandStatus
        self.affectedRows = affectedRows
    }

    /// The number of rows.
    package var count: Int { rows.count }

    /// Whether there are no rows.
    package var isEmpty: Bool { rows.isEmpty }

    /// The index of a column by name, or `nil`.
    package func columnIndex(named name: String) -> Int? {
        columns.firstIndex(of: name)
    }

    /// The text value at a row and column, or `nil` for NULL.
    ///
    /// - Precondition: `row` and `col` are in range.
    package func string(row: Int, col: Int) -> String? {
        rows[row][col]
    }

    /// The value at a row and column parsed as `Int64`.
    ///
    /// - Returns: The integer, or `nil` for NULL.
    /// - Throws: ``PostgresError`` with code ``PostgresError/Code/unexpectedResult`` when the text is not an integer.
    package func int64(row: Int, col: Int) throws(PostgresError) -> Int64? {
        guard let text = rows[row][col] else { return nil }
        guard let value = Int64(text) else {
            throw PostgresError(code: .unexpectedResult, message: "column \(columns[col]) is not an integer")
        }
        return value
    }

    /// The value at a row and column parsed as `Int`.
    package func int(row: Int, col: Int) throws(PostgresError) -> Int? {
        try int64(row: row, col: col).map { Int($0) }
    }

    /// The value at a row and column parsed as a PostgreSQL boolean (`t`/`f`).
    package func bool(row: Int, col: Int) throws(PostgresError) -> Bool? {
        switch rows[row][col] {
        case nil: return nil
        case "t": return true
        case "f": return false
        default: throw PostgresError(code: .unexpectedResult, message: "column \(columns[col]) is not a boolean")
        }
    }

    /// The single value of a one-row, one-column result (for `SELECT count(*)` and the like).
    ///
    /// - Throws: ``PostgresError`` when the result is not exactly one row and one column.
    package func scalar() throws(PostgresError) -> String? {
        guard rows.count == 1, columns.count == 1 else {
            throw PostgresError(
                code: .unexpectedResult,
                message: "expected 1 row and 1 column, got \(rows.count) rows and \(columns.count) columns"
            )
        }
        return rows[0][0]
    }

    /// The single value of a one-row, one-column result, as `Int64`.
    package func scalarInt64() throws(PostgresError) -> Int64? {
        _ = try scalar()
        return try int64(row: 0, col: 0)
    }
}
