/// An open `COPY … FROM STDIN` on a ``PGConnection``.
///
/// A session has a strict lifecycle, which the compiler enforces because the type is `~Copyable`:
/// ``write(_:)-(UnsafeRawBufferPointer)`` any number of times, then ``finish()`` exactly once. After `finish()` no
/// further write compiles. If the session is dropped without `finish()` (an error was thrown in between), `deinit`
/// aborts the COPY with `PQputCopyEnd(conn, message)`: the server fails the statement and keeps no row.
///
/// While a session is open, the connection refuses every other command.
///
/// - Important: When the COPY runs inside ``PGConnection/transaction(_:)``, an aborted COPY leaves the transaction
///   failed; the helper then rolls it back.
package struct CopyInSession: ~Copyable {
    /// Retained in `init`, released in `finish()` or `deinit`. Stored unmanaged so that `discard self` is allowed
    /// (it requires trivially-destroyed stored properties).
    private let connection: Unmanaged<PGConnection>
    /// Bytes sent so far.
    package private(set) var bytesSent: Int = 0

    internal init(connection: PGConnection) {
        self.connection = Unmanaged.passRetained(connection)
    }

    /// Sends a piece of COPY data. Pieces need not align with rows.
    ///
    /// - Throws: ``PostgresError`` with code ``PostgresError/Code/copyFailed`` or ``PostgresError/Code/connectionLost``.
    ///   The session is then unusable; drop it (which aborts) or call ``finish()`` to collect the server's error.
    package mutating func write(_ bytes: UnsafeRawBufferPointer) throws(PostgresError) {
        try connection.takeUnretainedValue().putCopyData(bytes)
        bytesSent += bytes.count
    }

    /// Sends a piece of COPY data.
    package mutating func write(_ bytes: [UInt8]) throws(PostgresError) {
        let connection = self.connection.takeUnretainedValue()
        let outcome = bytes.withUnsafeBytes { raw in
            Result { () throws(PostgresError) in try connection.putCopyData(raw) }
        }
        try outcome.get()
        bytesSent += bytes.count
    }

    /// Completes the COPY and checks the server's verdict.
    ///
    /// - Returns: The number of rows copied.
    /// - Throws: ``PostgresError`` with the server's SQLSTATE when the COPY failed (bad data `22P04`, unique violation
    ///   `23505`, …). Nothing was inserted in that case.
    @discardableResult
    package consuming func finish() throws(PostgresError) -> Int {
        let connection = self.connection
        discard self
        defer { connection.release() }
        let result = try connection.takeUnretainedValue().endCopy(abortMessage: nil)
        return result.affectedRows ?? 0
    }

    deinit {
        _ = try? connection.takeUnretainedValue().endCopy(
            abortMessage: "COPY aborted by client: CopyInSession dropped without finish()"
        )
        connection.release()
    }
}
