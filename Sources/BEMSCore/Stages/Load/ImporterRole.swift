import Logging

/// `bems setup --create-role NAME`: the least-privilege role the stages run as (README, Least privilege).
///
/// The role can log in and do exactly what the stages need: read, insert, update and delete readings (delete is
/// rollback of inserted rows), use the id sequence, write the ledger, create temporary tables (load's update staging
/// table), read `daily_aggregates`, and execute the two `SECURITY DEFINER` maintenance functions (refresh, analyze). It owns
/// nothing, so it cannot drop, truncate or alter the tables (`daily_aggregates` included) or the indexes, and it is created
/// `NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`.
package enum ImporterRole {
    /// Creates or updates the role and grants its privileges; idempotent. Run by the database owner after setup.
    ///
    /// - Parameters:
    ///   - password: Hashed by libpq on the client before it is sent; `nil` leaves the password as it is.
    /// - Returns: The statements run (the password shown as `*****`), for the operator and the README.
    /// - Throws: ``PipelineError`` 64 for an invalid name or an incomplete schema; ``PostgresError`` otherwise.
    @discardableResult
    package static func create(
        _ name: String, password: String?, on db: PGConnection, timeZone: String, ledgerSchema: String, logger: Logger
    ) throws -> [String] {
        guard !name.isEmpty, name.count <= 63, name.first!.isLetter || name.first == "_",
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else {
            throw PipelineError.usage("--create-role \(name): expected a role name of letters, digits and _ (at most 63)")
        }
        do {
            try Schema(timeZone: timeZone, ledgerSchema: ledgerSchema).verify(on: db)
        } catch let error as SchemaError {
            throw PipelineError.usage("run bems setup first: \(error)")
        }
        let role = try db.quoteIdentifier(name)
        let ledger = try db.quoteIdentifier(ledgerSchema)
        let home = try db.quoteIdentifier(
            db.exec(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                parameters: [Schema.readingsTable]
            ).scalar() ?? "public")
        let database = try db.quoteIdentifier(db.exec("SELECT current_database()").scalar() ?? "postgres")
        let exists = try db.exec("SELECT 1 FROM pg_roles WHERE rolname = $1", parameters: [name]).rows.count == 1
        let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
        var statements = [(exists ? "ALTER ROLE \(role) " : "CREATE ROLE \(role) ") + attributes]
        let sequence =
            try db.exec("SELECT pg_get_serial_sequence($1, 'id')", parameters: [Schema.readingsTable]).scalar()
            ?? "\(home).sensor_readings_id_seq"
        statements += grants(role: role, home: home, ledger: ledger, database: database, sequence: sequence)
        var shown = statements
        try db.transaction {
            for sql in statements { try db.exec(sql) }
            if let password {
                let hashed = try db.encryptedPassword(password, user: name)
                try db.exec("ALTER ROLE \(role) PASSWORD \(try db.quoteLiteral(hashed))")
                shown.append("ALTER ROLE \(role) PASSWORD '*****'")
            }
        }
        logger.notice("importer role ready", metadata: ["role": "\(name)", "created": "\(!exists)"])
        return shown
    }

    /// The GRANTs, in the order they run (README lists them).
    static func grants(role: String, home: String, ledger: String, database: String, sequence: String) -> [String] {
        let readings = "\(home).\(Schema.readingsTable)"
        return [
            "GRANT CONNECT, TEMPORARY ON DATABASE \(database) TO \(role)",
            "GRANT USAGE ON SCHEMA \(home), \(ledger) TO \(role)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON \(readings) TO \(role)",
            "GRANT USAGE, SELECT ON SEQUENCE \(sequence) TO \(role)",
            "GRANT SELECT ON \(home).\(Schema.aggregatesTable) TO \(role)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \(ledger) TO \(role)",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA \(ledger) TO \(role)",
            // When the ledger shares the table's schema, the line above also granted writing daily_aggregates.
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON \(home).\(Schema.aggregatesTable) FROM \(role)",
            "GRANT EXECUTE ON FUNCTION \(ledger).\(Schema.refreshFunction)(boolean), "
                + "\(ledger).\(Schema.analyzeFunction)() TO \(role)",
        ]
    }
}
