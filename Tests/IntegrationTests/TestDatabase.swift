import Foundation
import Testing

@testable import BEMSCore

/// Access to the PostgreSQL server named by `BEMS_TEST_DATABASE_URL` (a libpq URI or keyword/value string).
///
/// - Without the variable, database suites are disabled (a plain `swift test` passes without a server).
/// - With `BEMS_REQUIRE_DATABASE=1`, the suites stay enabled and every test fails when the URL is missing, so CI
///   cannot silently skip them.
///
/// Start a throwaway server with `stages/pg-embedded.sh start /tmp/bems-pg 54329` and export
/// `BEMS_TEST_DATABASE_URL=$(stages/pg-embedded.sh url /tmp/bems-pg)`.
enum TestDatabase {
    static let url: String? = {
        guard let value = ProcessInfo.processInfo.environment["BEMS_TEST_DATABASE_URL"], !value.isEmpty else {
            return nil
        }
        return value
    }()

    static let isRequired = ProcessInfo.processInfo.environment["BEMS_REQUIRE_DATABASE"] == "1"

    /// Whether database suites run: a URL is set, or a database is required (then a missing URL fails the tests).
    static let isEnabled = url != nil || isRequired

    static let disabledReason: Comment = "set BEMS_TEST_DATABASE_URL (see stages/pg-embedded.sh) to run"

    struct MissingURL: Error, CustomStringConvertible {
        var description: String { "BEMS_REQUIRE_DATABASE=1 but BEMS_TEST_DATABASE_URL is not set" }
    }

    /// Opens a connection to the test server.
    static func connect() throws -> PGConnection {
        guard let url else { throw MissingURL() }
        return try PGConnection(conninfo: url)
    }

    /// Runs `body` on a fresh connection whose `search_path` is a new schema `t_<random>`, dropped afterwards.
    ///
    /// - Parameter body: Gets the connection and the (unquoted, lowercase) schema name.
    static func withSchema<R>(_ body: (PGConnection, String) throws -> R) throws -> R {
        let db = try connect()
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try db.exec("CREATE SCHEMA \(schema)")
        defer { dropSchema(schema, on: db) }
        try db.exec("SET search_path TO \(schema)")
        return try body(db, schema)
    }

    private static func dropSchema(_ schema: String, on db: PGConnection) {
        var connection = db
        if !db.isAlive, let fresh = try? connect() {
            connection = fresh
        }
        if connection.transactionStatus != .idle {
            _ = try? connection.exec("ROLLBACK")
        }
        _ = try? connection.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE")
    }
}
