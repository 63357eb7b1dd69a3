import Testing

@testable import BEMSCore

@Suite(
    .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason),
    .timeLimit(.minutes(2))
)
struct PGConnectionTests {
    @Test func connectsAndRunsASimpleQuery() throws {
        let db = try TestDatabase.connect()
        let result = try db.exec("SELECT 1 AS one, NULL::text AS nothing, 'x''y' AS quoted")
        #expect(result.columns == ["one", "nothing", "quoted"])
        #expect(result.rows == [["1", nil, "x'y"]])
        #expect(try result.int64(row: 0, col: 0) == 1)
        #expect(db.isAlive)
        #expect(db.status == .ok)
        #expect(db.transactionStatus == .idle)
        #expect(db.backendPID > 0)
        #expect(db.serverVersion >= 100_000)
        #expect(db.parameterStatus("client_encoding") == "UTF8")
        #expect(db.parameterStatus("integer_datetimes") == "on")
        #expect(db.parameterStatus("no_such_parameter") == nil)
        let pid = try db.exec("SELECT pg_backend_pid()").scalarInt64()
        #expect(pid == Int64(db.backendPID))
    }

    @Test func bindsTextParametersIncludingNull() throws {
        let db = try TestDatabase.connect()
        let result = try db.exec(
            "SELECT $1::text, $2::int8 + 1, $3::text IS NULL",
            parameters: ["it's \"quoted\" ; DROP TABLE x", "41", nil]
        )
        #expect(result.rows == [["it's \"quoted\" ; DROP TABLE x", "42", "t"]])
    }

    @Test func syntaxErrorCarriesSQLState42601() throws {
        let db = try TestDatabase.connect()
        let error = #expect(throws: PostgresError.self) { try db.exec("SELEC 1") }
        #expect(error?.code == .queryFailed)
        #expect(error?.sqlState == "42601")
        #expect(error?.message.contains("syntax error") == true)
        #expect(error?.isTransient == false)
        #expect(error?.description.contains("[42601]") == true)
        // The connection stays usable.
        #expect(try db.exec("SELECT 2").scalar() == "2")
    }

    @Test func uniqueViolationCarriesSQLState23505AndDetail() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE u (k int PRIMARY KEY)")
            try db.exec("INSERT INTO u VALUES (1)")
            let error = #expect(throws: PostgresError.self) {
                try db.exec("INSERT INTO u VALUES ($1)", parameters: ["1"])
            }
            #expect(error?.sqlState == "23505")
            #expect(error?.isUniqueViolation == true)
            #expect(error?.detail?.contains("already exists") == true)
            #expect(error?.statement == "INSERT INTO u VALUES ($1)")
        }
    }

    @Test func hintIsCaptured() throws {
        let db = try TestDatabase.connect()
        let error = #expect(throws: PostgresError.self) { try db.exec("SELECT no_such_function_xyz(1)") }
        #expect(error?.sqlState == "42883")
        #expect(error?.hint?.isEmpty == false)
    }

    @Test func transactionCommitsAndRollsBack() throws {
        struct Boom: Error {}
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE t (v int)")
            let value = try db.transaction {
                try db.exec("INSERT INTO t VALUES (1)")
                return 7
            }
            #expect(value == 7)
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.exec("INSERT INTO t VALUES (2)")
                    throw Boom()
                }
            }
            #expect(db.transactionStatus == .idle)
            #expect(try db.exec("SELECT count(*) FROM t").scalarInt64() == 1)
        }
    }

    @Test func commitOfAFailedTransactionIsAnError() throws {
        try TestDatabase.withSchema { db, _ in
            let error = #expect(throws: PostgresError.self) {
                try db.transaction {
                    _ = try? db.exec("SELEC 1")  // swallowed: the transaction is now failed
                }
            }
            #expect(error?.sqlState == "25P02")
            #expect(db.transactionStatus == .idle)
        }
    }

    @Test func nestedTransactionIsRefused() throws {
        let db = try TestDatabase.connect()
        let error = #expect(throws: PostgresError.self) {
            try db.transaction { try db.transaction {} }
        }
        #expect(error?.code == .invalidState)
        #expect(db.transactionStatus == .idle)
    }

    @Test func terminatedBackendIsConnectionLostAndTransient() throws {
        let victim = try TestDatabase.connect()
        let killer = try TestDatabase.connect()
        try killer.exec("SELECT pg_terminate_backend($1::int)", parameters: [String(victim.backendPID)])
        // The backend may need a moment to exit; poll.
        var lastError: PostgresError?
        for _ in 0..<50 {
            do {
                try victim.exec("SELECT 1")
            } catch {
                lastError = error
                break
            }
        }
        let error = try #require(lastError)
        #expect(error.isTransient)
        #expect(!victim.isAlive)
    }
}

// MARK: - Connection failures (no server needed)

@Suite(.timeLimit(.minutes(1)))
struct ConnectionFailureTests {
    static let password = "s3cr3t-XYZ"

    @Test(arguments: [
        "host=127.0.0.1 port=1 user=postgres password=\(password) dbname=postgres connect_timeout=5",
        "host=127.0.0.1 port=1 user=postgres password='\(password)' connect_timeout=5",
        "postgresql://postgres:\(password)@127.0.0.1:1/postgres?connect_timeout=5",
        "postgresql://postgres@127.0.0.1:1/postgres?password=\(password)&connect_timeout=5",
        "postgresql://postgres:\(password)%ZZ@127.0.0.1:1/postgres",  // bad percent-encoding: libpq quotes the token
        "host=/nonexistent/dir port=5432 user=postgres password=\(password)",
    ])
    func failedConnectionDoesNotRevealThePassword(conninfo: String) {
        let error = #expect(throws: PostgresError.self) { try PGConnection(conninfo: conninfo) }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains(Self.password) == false)
        #expect(error?.debugDescription.contains(Self.password) == false)
        #expect(error?.message.contains(Self.password) == false)
        #expect(error.map { String(describing: $0) }?.contains(Self.password) == false)
    }

    @Test func unreachableServerIsTransient() {
        let error = #expect(throws: PostgresError.self) {
            try PGConnection(conninfo: "host=127.0.0.1 port=1 connect_timeout=5")
        }
        #expect(error?.isTransient == true)
    }
}
