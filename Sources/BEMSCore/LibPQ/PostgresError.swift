/// An error reported by libpq or PostgreSQL, with the server's diagnostic fields.
///
/// `description` shows the code, SQLSTATE, message, detail and hint. It never contains a password or a connection
/// string: connection errors are built from libpq's message with the password scrubbed out, and any conninfo shown
/// goes through ``ConnectionString/redacted(_:)``.
package struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of operation failed. An extensible set of constants (STYLE.md §4).
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case connectionFailed
            case connectionLost
            case queryFailed
            case copyFailed
            case unexpectedResult
            case invalidState
        }

        private let base: Base

        /// `PQconnectdb` did not produce a usable connection.
        package static let connectionFailed = Code(base: .connectionFailed)
        /// The connection broke while a command was running (server crash, network, terminated backend).
        package static let connectionLost = Code(base: .connectionLost)
        /// The server rejected a command; see ``PostgresError/sqlState``.
        package static let queryFailed = Code(base: .queryFailed)
        /// Sending COPY data or ending the COPY failed.
        package static let copyFailed = Code(base: .copyFailed)
        /// The command ran but returned something the caller did not expect (for example no rows, a non-integer).
        package static let unexpectedResult = Code(base: .unexpectedResult)
        /// The connection was used wrongly, for example a query while a COPY is in progress.
        package static let invalidState = Code(base: .invalidState)

        package var description: String {
            switch base {
            case .connectionFailed: return "connection failed"
            case .connectionLost: return "connection lost"
            case .queryFailed: return "query failed"
            case .copyFailed: return "COPY failed"
            case .unexpectedResult: return "unexpected result"
            case .invalidState: return "invalid state"
            }
        }
    }

    /// What kind of operation failed.
    package var code: Code
    /// The five-character SQLSTATE from the server (`PG_DIAG_SQLSTATE`), or `nil` for client-side failures.
    package var sqlState: String?
    /// The primary message (`PG_DIAG_MESSAGE_PRIMARY`, or libpq's connection error message).
    package var message: String
    /// The optional detail (`PG_DIAG_MESSAGE_DETAIL`), for example the conflicting key of a unique violation.
    package var detail: String?
    /// The optional hint (`PG_DIAG_MESSAGE_HINT`).
    package var hint: String?
    /// The first line of the SQL that failed, if any (never parameter values).
    package var statement: String?
    /// Where the error was raised.
    package var file: String
    /// The line where the error was raised.
    package var line: Int

    /// Creates an error.
    package init(
        code: Code,
        sqlState: String? = nil,
        message: String,
        detail: String? = nil,
        hint: String? = nil,
        statement: String? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.statement = statement.map(Self.firstLine)
        self.file = file
        self.line = line
    }

    /// Whether retrying the same work on a fresh connection might succeed.
    ///
    /// True for connection loss and for these SQLSTATEs: class `08` (connection exception), `57P01` admin shutdown,
    /// `57P02` crash shutdown, `57P03` cannot connect now, `53300` too many connections, `40001` serialization
    /// failure, `40P01` deadlock detected and `57014` query canceled (statement timeout). A failed connection attempt
    /// without SQLSTATE (server not reachable) also counts as transient; authentication failures (`28xxx`) do not.
    ///
    /// libpq reports no SQLSTATE for a failed connection attempt, so ``PostgresError/Code/connectionFailed`` is
    /// classified by libpq's (English) message: authentication failures, `pg_hba.conf` rejections, unknown
    /// databases or roles and malformed connection strings are permanent; everything else (refused, timed out,
    /// "too many clients", "the database system is starting up") is transient. A host name that does not resolve is
    /// permanent (a typo), unless the resolver reports a temporary failure (`EAI_AGAIN`).
    package var isTransient: Bool {
        if code == .connectionLost { return true }
        guard let sqlState else {
            guard code == .connectionFailed else { return false }
            if message.contains("Temporary failure in name resolution") { return true }
            return !Self.permanentConnectionMessages.contains { message.contains($0) }
        }
        if sqlState.hasPrefix("08") { return true }
        return Self.transientStates.contains(sqlState)
    }

    private static let transientStates: Set<String> = ["57P01", "57P02", "57P03", "53300", "40001", "40P01", "57014"]

    /// Fragments of libpq connection messages that retrying cannot fix.
    private static let permanentConnectionMessages = [
        "authentication failed", "pg_hba.conf", "does not exist", "invalid connection option", "invalid URI",
        "invalid percent-encoded token", "missing \"=\"", "unterminated quoted string", "invalid sslmode",
        "no password supplied", "permission denied", "could not translate host name",
    ]

    /// Whether the error is a unique violation (`23505`).
    package var isUniqueViolation: Bool { sqlState == "23505" }

    /// Whether a statement was canceled (`57014` query canceled): it hit `statement_timeout`, or someone asked to
    /// cancel it (`pg_cancel_backend`), which the server reports with the same SQLSTATE. The connection stays usable.
    package var isQueryCanceled: Bool { sqlState == "57014" }

    /// The code, SQLSTATE, message, detail and hint (STYLE.md §4), on one line.
    package var description: String {
        var text = code.description
        if let sqlState { text += " [\(sqlState)]" }
        text += ": " + message
        if let detail { text += " (detail: \(detail))" }
        if let hint { text += " (hint: \(hint))" }
        return text
    }

    /// ``description`` plus the failing statement's first line and the source location, for `debug` logs.
    package var debugDescription: String {
        var text = description
        if let statement { text += "; statement: \(statement)" }
        text += " (\(file):\(line))"
        return text
    }

    private static func firstLine(_ sql: String) -> String {
        let trimmed = sql.drop { $0 == " " || $0 == "\n" || $0 == "\t" }
        let line = trimmed.prefix { $0 != "\n" }
        return line.count > 200 ? String(line.prefix(200)) + "…" : String(line)
    }
}
