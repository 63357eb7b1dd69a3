// MARK: - Transactions

extension PGConnection {
    /// Runs `body` inside `BEGIN` … `COMMIT`, rolling back when it throws.
    ///
    /// - Parameter body: The work. It may run queries and COPYs on this connection.
    /// - Returns: What `body` returns.
    /// - Throws: The error of `body` (after `ROLLBACK`), or ``PostgresError`` when `BEGIN`/`COMMIT` fail. A `COMMIT`
    ///   that the server turns into a rollback (because a statement failed and `body` swallowed the error) is
    ///   reported as an error too, with code ``PostgresError/Code/queryFailed`` and SQLSTATE `25P02`.
    package func transaction<R>(_ body: () throws -> R) throws -> R {
        guard transactionStatus == .idle else {
            throw PostgresError(code: .invalidState, message: "a transaction is already open on this connection")
        }
        try exec("BEGIN")
        let value: R
        do {
            value = try body()
        } catch {
            if isAlive, transactionStatus != .idle {
                _ = try? exec("ROLLBACK")
            }
            throw error
        }
        let commit = try exec("COMMIT")
        if commit.commandStatus == "ROLLBACK" {
            throw PostgresError(
                code: .queryFailed,
                sqlState: "25P02",
                message: "transaction was rolled back at COMMIT because a statement in it failed"
            )
        }
        return value
    }
}
