import Testing

@testable import BEMSCore

@Suite struct PostgresErrorTests {
    @Test(arguments: ["08000", "08003", "08006", "57P01", "57P02", "57P03", "53300", "40001", "40P01", "57014"])
    func transientSQLStates(sqlState: String) {
        #expect(PostgresError(code: .queryFailed, sqlState: sqlState, message: "x").isTransient)
    }

    @Test(arguments: ["42601", "23505", "28P01", "22003", "53100", "XX000"])
    func permanentSQLStates(sqlState: String) {
        #expect(!PostgresError(code: .queryFailed, sqlState: sqlState, message: "x").isTransient)
    }

    @Test func connectionLossIsTransient() {
        #expect(PostgresError(code: .connectionLost, message: "server closed the connection").isTransient)
        #expect(PostgresError(code: .connectionFailed, message: "refused").isTransient)
        #expect(!PostgresError(code: .connectionFailed, sqlState: "28P01", message: "auth").isTransient)
        let auth =
            "connection to server at \"h\", port 5432 failed: FATAL:  password authentication failed for user \"u\""
        #expect(!PostgresError(code: .connectionFailed, message: auth).isTransient)
        let busy = "connection to server at \"h\", port 5432 failed: FATAL:  sorry, too many clients already"
        #expect(PostgresError(code: .connectionFailed, message: busy).isTransient)
    }

    @Test func descriptionShowsCodeStateMessageDetailAndHint() {
        let error = PostgresError(
            code: .queryFailed,
            sqlState: "23505",
            message: "duplicate key",
            detail: "Key (k)=(1) already exists.",
            hint: "try again",
            statement: "INSERT INTO u\nVALUES (1)"
        )
        #expect(
            error.description
                == "query failed [23505]: duplicate key (detail: Key (k)=(1) already exists.) (hint: try again)"
        )
        #expect(error.statement == "INSERT INTO u")
        #expect(error.debugDescription.contains("statement: INSERT INTO u"))
    }
}

@Suite struct ConnectionStringTests {
    @Test(arguments: [
        ("host=/tmp user=bems password=s3cr3t dbname=x", "host=/tmp user=bems password=***** dbname=x"),
        ("password = 's3 cr\\'et' host=h", "password=***** host=h"),
        ("host=h", "host=h"),
        ("", ""),
        ("host=h password", "<unparseable connection string>"),
        ("host=h password='s3cr3t", "<unparseable connection string>"),
        (
            "postgresql://bems:s3cr3t@db.example.com:6543/postgres?sslmode=require",
            "postgresql://bems:*****@db.example.com:6543/postgres?sslmode=require"
        ),
        ("postgres://bems@h/db?password=s3cr3t&sslmode=require", "postgres://bems@h/db?password=*****&sslmode=require"),
        ("postgresql://u:p%40ss@h", "postgresql://u:*****@h"),
        (
            "postgresql:///postgres?host=/tmp/x&port=5&user=postgres",
            "postgresql:///postgres?host=/tmp/x&port=5&user=postgres"
        ),
        ("postgresql://h1:1,h2:2/db", "postgresql://h1:1,h2:2/db"),
    ])
    func redactsPasswords(_ c: (String, String)) {
        #expect(ConnectionString.redacted(c.0) == c.1)
    }
}
