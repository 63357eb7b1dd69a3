internal import CLibPQ
import Logging

/// One libpq connection (`PGconn`), owned by this object and closed in `deinit`.
///
/// All calls are synchronous and blocking. A `PGconn` is not thread-safe, so neither is this class: it is not
/// `Sendable`; use one connection per task.
///
/// ```swift
/// let db = try PGConnection(conninfo: url)
/// let n = try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64()
/// ```
package final class PGConnection {
    /// The libpq state of a connection.
    package enum Status: Sendable, Equatable {
        /// Connected and usable.
        case ok
        /// The connection is broken; open a new one.
        case bad
        /// Any other libpq state (only seen with non-blocking connects, which we do not use).
        case other
    }

    /// The server-side transaction state of a connection (`PQtransactionStatus`).
    package enum TransactionStatus: Sendable, Equatable {
        /// No transaction open.
        case idle
        /// A command is in progress.
        case active
        /// Inside a transaction block.
        case inTransaction
        /// Inside a failed transaction block; only ROLLBACK works.
        case inFailedTransaction
        /// The connection is bad.
        case unknown
    }

    private let handle: OpaquePointer
    private let noticeSink: NoticeSink
    /// The connection string with its password masked (``ConnectionString/redacted(_:)``), safe for logs.
    package let redactedConninfo: String
    /// Set while a ``CopyInSession`` is open; every other command is refused meanwhile.
    private var copyInProgress = false

    // MARK: - Initializer

    /// Opens a connection with `PQconnectdb`.
    ///
    /// - Parameters:
    ///   - conninfo: A libpq keyword/value string (`host=/tmp dbname=bems`) or URI (`postgresql://…`). Anything left
    ///     out comes from the `PG*` environment variables and `~/.pgpass`, exactly as for `psql`; `""` uses only those.
    ///   - logger: Receives server notices (for example "relation already exists, skipping") at `debug` level.
    ///     Without a logger, notices are dropped instead of being printed to stderr.
    ///   - fallbackApplicationName: The session's `application_name` when neither `conninfo` nor `PGAPPNAME` sets one
    ///     (libpq's `fallback_application_name`).
    /// - Throws: ``PostgresError`` with code ``PostgresError/Code/connectionFailed``. Its message is libpq's, with any
    ///   password from `conninfo` scrubbed out.
    package init(conninfo: String, logger: Logger? = nil, fallbackApplicationName: String? = nil) throws(PostgresError)
    {
        guard let connection = Self.connect(conninfo, fallbackApplicationName: fallbackApplicationName) else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.scrubbed(Self.errorMessage(of: connection), conninfo: conninfo)
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        let sink = NoticeSink(logger: logger)
        PQsetNoticeProcessor(connection, noticeProcessor, Unmanaged.passUnretained(sink).toOpaque())
        if PQsetClientEncoding(connection, "UTF8") != 0 {
            let message = Self.errorMessage(of: connection)
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: "cannot set client encoding UTF8: \(message)")
        }
        self.handle = connection
        self.noticeSink = sink
        self.redactedConninfo = ConnectionString.redacted(conninfo)
    }

    deinit {
        PQfinish(handle)
    }

    /// `PQconnectdb`, or `PQconnectdbParams` with `conninfo` expanded as `dbname` when a fallback application name is
    /// given (later keywords only fill in what the string leaves out for `fallback_application_name`).
    private static func connect(_ conninfo: String, fallbackApplicationName: String?) -> OpaquePointer? {
        guard let fallbackApplicationName else { return PQconnectdb(conninfo) }
        return "dbname".withCString { dbnameKey in
            "fallback_application_name".withCString { nameKey in
                conninfo.withCString { dbname in
                    fallbackApplicationName.withCString { name in
                        let keywords: [UnsafePointer<CChar>?] = [dbnameKey, nameKey, nil]
                        let values: [UnsafePointer<CChar>?] = [dbname, name, nil]
                        return PQconnectdbParams(keywords, values, 1)
                    }
                }
            }
        }
    }

    // MARK: - Connection state

    /// The libpq connection status.
    package var status: Status {
        switch PQstatus(handle) {
        case CONNECTION_OK: return .ok
        case CONNECTION_BAD: return .bad
        default: return .other
        }
    }

    /// Whether the connection is usable. Checks local state only; a dead server is noticed at the next command.
    package var isAlive: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server-side transaction state.
    package var transactionStatus: TransactionStatus {
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_ACTIVE: return .active
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .inFailedTransaction
        default: return .unknown
        }
    }

    /// The process id of the server backend (`PQbackendPID`), for `pg_stat_activity` and `pg_cancel_backend`.
    package var backendPID: Int { Int(PQbackendPID(handle)) }

    /// The server version as an integer, for example `150010` for 15.10 (`PQserverVersion`).
    package var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// A parameter the server reports at startup (`PQparameterStatus`), for example `server_version`, `TimeZone`,
    /// `integer_datetimes`, `standard_conforming_strings`.
    ///
    /// - Returns: The value, or `nil` when the server did not report it.
    package func parameterStatus(_ name: String) -> String? {
        PQparameterStatus(handle, name).map { String(cString: $0) }
    }

    // MARK: - Commands

    /// Runs one or more SQL statements with the simple query protocol (`PQexec`).
    ///
    /// With several statements separated by `;`, they run in one implicit transaction unless they contain
    /// `BEGIN`/`COMMIT`, and the result of the last one is returned.
    ///
    /// - Parameter sql: The SQL text. Never interpolate values into it; use ``exec(_:parameters:)``.
    /// - Returns: The rows of the last statement, as text.
    /// - Throws: ``PostgresError`` with the server's SQLSTATE.
    @discardableResult
    package func exec(_ sql: String) throws(PostgresError) -> PGResult {
        try checkNoCopy(sql)
        return try takeResult(PQexec(handle, sql), sql: sql)
    }

    /// Runs one statement with text-format parameters `$1`, `$2`, … (`PQexecParams`).
    ///
    /// - Parameters:
    ///   - sql: One SQL statement.
    ///   - parameters: The parameter values in PostgreSQL text format; `nil` is NULL. The server infers the types,
    ///     so add casts such as `$1::timestamptz` where it cannot.
    /// - Returns: The rows, as text.
    /// - Throws: ``PostgresError`` with the server's SQLSTATE.
    @discardableResult
    package func exec(_ sql: String, parameters: [String?]) throws(PostgresError) -> PGResult {
        try checkNoCopy(sql)
        let cValues: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map(Self.cStringCopy) }
        defer { cValues.forEach { $0?.deallocate() } }
        let values = cValues.map { UnsafePointer($0) }
        let result = PQexecParams(handle, sql, Int32(values.count), nil, values, nil, nil, 0)
        return try takeResult(result, sql: sql)
    }

    /// Starts `COPY … FROM STDIN` and returns the session that sends the data.
    ///
    /// - Parameter sql: A `COPY table (columns) FROM STDIN …` statement, for example with `(FORMAT binary)`.
    /// - Returns: The open session. Call ``CopyInSession/finish()`` to commit the data to the statement; dropping the
    ///   session without finishing aborts the COPY, so the statement fails and no row is inserted.
    /// - Throws: ``PostgresError`` when the statement fails or is not a COPY FROM STDIN.
    package func copyIn(_ sql: String) throws(PostgresError) -> CopyInSession {
        try checkNoCopy(sql)
        guard let result = PQexec(handle, sql) else { throw connectionError(sql: sql) }
        guard PQresultStatus(result) == PGRES_COPY_IN else {
            // Either an error, or some other command: turn it into the matching error.
            _ = try takeResult(result, sql: sql)
            throw PostgresError(code: .invalidState, message: "statement is not COPY FROM STDIN", statement: sql)
        }
        PQclear(result)
        copyInProgress = true
        return CopyInSession(connection: self)
    }

    // MARK: - Escaping

    /// Quotes a string as an SQL literal for this connection (`PQescapeLiteral`), for example `'it''s'`.
    ///
    /// Prefer ``exec(_:parameters:)``; use this only where parameters are not allowed, such as in DDL.
    package func quoteLiteral(_ value: String) throws(PostgresError) -> String {
        let utf8 = Array(value.utf8)
        guard let escaped = PQescapeLiteral(handle, value, utf8.count) else {
            throw PostgresError(code: .invalidState, message: Self.errorMessage(of: handle))
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    /// Quotes a string as an SQL identifier for this connection (`PQescapeIdentifier`), for example `"t_1"`.
    package func quoteIdentifier(_ name: String) throws(PostgresError) -> String {
        let utf8 = Array(name.utf8)
        guard let escaped = PQescapeIdentifier(handle, name, utf8.count) else {
            throw PostgresError(code: .invalidState, message: Self.errorMessage(of: handle))
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    // MARK: - COPY internals (used by CopyInSession)

    /// Sends COPY data (`PQputCopyData`), in pieces that fit an `Int32`.
    internal func putCopyData(_ bytes: UnsafeRawBufferPointer) throws(PostgresError) {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = min(remaining, 1 << 30)
            if bems_PQputCopyData(handle, base, Int32(n)) != 1 {
                let lost = PQstatus(handle) != CONNECTION_OK
                throw PostgresError(
                    code: lost ? .connectionLost : .copyFailed,
                    message: Self.errorMessage(of: handle)
                )
            }
            base += n
            remaining -= n
        }
    }

    /// Ends the COPY (`PQputCopyEnd`) and reads its command result.
    ///
    /// - Parameter abortMessage: `nil` to complete the COPY; otherwise the COPY fails on the server with this
    ///   message and the statement inserts nothing.
    /// - Returns: The command result of the COPY (its ``PGResult/affectedRows`` is the number of rows copied).
    internal func endCopy(abortMessage: String?) throws(PostgresError) -> PGResult {
        copyInProgress = false
        let rc: Int32
        if let abortMessage {
            rc = PQputCopyEnd(handle, abortMessage)
        } else {
            rc = PQputCopyEnd(handle, nil)
        }
        var outcome: Result<PGResult, PostgresError>?
        if rc != 1 {
            outcome = .failure(connectionError(sql: nil, code: .copyFailed))
        }
        while let result = PQgetResult(handle) {
            if outcome == nil {
                do throws(PostgresError) {
                    outcome = .success(try takeResult(result, sql: nil, draining: false))
                } catch {
                    outcome = .failure(error)
                }
            } else {
                PQclear(result)
            }
            // A broken connection keeps returning results; stop.
            if PQstatus(handle) != CONNECTION_OK { break }
        }
        switch outcome {
        case .success(let result): return result
        case .failure(var error):
            if error.code == .queryFailed { error.code = .copyFailed }
            throw error
        case nil: throw connectionError(sql: nil, code: .copyFailed)
        }
    }

    // MARK: - Private helpers

    private func checkNoCopy(_ sql: String) throws(PostgresError) {
        if copyInProgress {
            throw PostgresError(
                code: .invalidState,
                message: "a COPY is in progress on this connection; finish the CopyInSession first",
                statement: sql
            )
        }
    }

    /// Converts a `PGresult` into a ``PGResult`` or a ``PostgresError``, and clears it.
    ///
    /// - Parameter draining: Whether to read the remaining results of the command (after `PQexec`, libpq wants
    ///   `PQgetResult` to reach `nil`; `PQexec` does that itself, so only COPY states need it).
    private func takeResult(
        _ result: OpaquePointer?,
        sql: String?,
        draining: Bool = true
    ) throws(PostgresError) -> PGResult {
        guard let result else { throw connectionError(sql: sql) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.makeResult(result)
        case PGRES_COPY_IN:
            // A COPY FROM STDIN sent through exec(): end it so the connection stays usable.
            _ = try? endCopy(abortMessage: "COPY FROM STDIN must go through PGConnection.copyIn")
            throw PostgresError(code: .invalidState, message: "use copyIn(_:) for COPY FROM STDIN", statement: sql)
        case PGRES_COPY_OUT:
            var buffer: UnsafeMutablePointer<CChar>?
            while PQgetCopyData(handle, &buffer, 0) > 0 { PQfreemem(buffer) }
            while let next = PQgetResult(handle) { PQclear(next) }
            throw PostgresError(code: .invalidState, message: "COPY TO STDOUT is not supported", statement: sql)
        default:
            throw makeError(result, sql: sql)
        }
    }

    private func makeError(_ result: OpaquePointer, sql: String?) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let lost = PQstatus(handle) != CONNECTION_OK
        let sqlState = field(UInt8(ascii: "C"))
        var message = field(UInt8(ascii: "M"))
        if message == nil {
            let text = String(cString: PQresultErrorMessage(result))
            message = text.isEmpty ? Self.errorMessage(of: handle) : Self.trimmed(text)
        }
        return PostgresError(
            code: lost && sqlState == nil ? .connectionLost : .queryFailed,
            sqlState: sqlState,
            message: message ?? "unknown error",
            detail: field(UInt8(ascii: "D")),
            hint: field(UInt8(ascii: "H")),
            statement: sql
        )
    }

    private func connectionError(sql: String?, code: PostgresError.Code = .queryFailed) -> PostgresError {
        let lost = PQstatus(handle) != CONNECTION_OK
        return PostgresError(
            code: lost ? .connectionLost : code,
            message: Self.errorMessage(of: handle),
            statement: sql
        )
    }

    private static func makeResult(_ result: OpaquePointer) -> PGResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for c in 0..<columnCount {
            columns.append(PQfname(result, Int32(c)).map { String(cString: $0) } ?? "?column?")
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var row: [String?] = []
            row.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) != 0 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            rows.append(row)
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = Int(String(cString: PQcmdTuples(result)))
        return PGResult(columns: columns, rows: rows, commandStatus: tag, affectedRows: affected)
    }

    /// A NUL-terminated copy of `text`, to be deallocated by the caller.
    private static func cStringCopy(_ text: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = text.utf8
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
        var i = 0
        for byte in utf8 {
            pointer[i] = CChar(bitPattern: byte)
            i += 1
        }
        pointer[i] = 0
        return pointer
    }

    private static func errorMessage(of connection: OpaquePointer) -> String {
        let text = trimmed(String(cString: PQerrorMessage(connection)))
        return text.isEmpty ? "unknown libpq error" : text
    }

    private static func trimmed(_ text: String) -> String {
        var t = Substring(text)
        while let last = t.last, last == "\n" || last == " " { t = t.dropLast() }
        return String(t)
    }

    /// Removes the password of `conninfo` from a libpq message.
    ///
    /// When libpq cannot parse `conninfo`, its message may quote part of it (for example a bad percent-encoded
    /// token), so every double-quoted fragment is masked as well.
    private static func scrubbed(_ message: String, conninfo: String) -> String {
        var errorPointer: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorPointer) else {
            if let errorPointer { PQfreemem(errorPointer) }
            return maskQuoted(message)
        }
        defer { PQconninfoFree(options) }
        var text = message
        var option = options
        while let keyword = option.pointee.keyword {
            if String(cString: keyword) == "password", let value = option.pointee.val {
                let password = String(cString: value)
                if !password.isEmpty {
                    text = text.replacing(password, with: ConnectionString.mask)
                }
            }
            option += 1
        }
        // The raw conninfo itself must never appear either.
        if !conninfo.isEmpty {
            text = text.replacing(conninfo, with: ConnectionString.redacted(conninfo))
        }
        return text
    }

    private static func maskQuoted(_ message: String) -> String {
        var out = ""
        var inQuote = false
        for ch in message {
            if ch == "\"" {
                inQuote.toggle()
                out.append(ch)
                if inQuote { out += ConnectionString.mask }
            } else if !inQuote {
                out.append(ch)
            }
        }
        return out
    }
}

// MARK: - Notices

/// Receives server notices for one connection; kept alive by the connection that registered it.
private final class NoticeSink {
    let logger: Logger?
    init(logger: Logger?) { self.logger = logger }
}

/// libpq notice processor: forwards to the connection's logger, never to stderr.
private func noticeProcessor(_ context: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let context, let message else { return }
    let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
    guard let logger = sink.logger else { return }
    var text = String(cString: message)
    while text.last == "\n" { text.removeLast() }
    logger.debug("postgres notice", metadata: ["pg.notice": "\(text)"])
}

extension PGConnection {
    /// The password hashed by libpq on the client (`PQencryptPasswordConn`, the server's `password_encryption`
    /// algorithm, SCRAM-SHA-256 by default), for `ALTER ROLE … PASSWORD`: the clear text never reaches the server,
    /// its logs or `pg_stat_statements`.
    ///
    /// - Throws: ``PostgresError`` with libpq's message.
    package func encryptedPassword(_ password: String, user: String) throws(PostgresError) -> String {
        guard let hashed = PQencryptPasswordConn(handle, password, user, nil) else {
            throw PostgresError(code: .queryFailed, message: "cannot hash the password: \(Self.errorMessage(of: handle))")
        }
        defer { PQfreemem(hashed) }
        return String(cString: hashed)
    }
}
