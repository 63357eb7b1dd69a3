import Logging

/// `bems setup`: runs ``Schema/setup(on:)`` plus the load ledger's additive tables, and says what was created.
package enum DatabaseSetup {
    /// What setup found and did.
    package struct Report: Sendable, Equatable {
        /// Object name and `created` or `exists`, in setup order.
        package var objects: [(name: String, created: Bool)]

        package static func == (a: Report, b: Report) -> Bool {
            a.objects.map(\.name) == b.objects.map(\.name) && a.objects.map(\.created) == b.objects.map(\.created)
        }

        /// One line per object.
        package var lines: [String] { objects.map { "\($0.created ? "created" : "exists ") \($0.name)" } }
    }

    /// Makes sure the schema is there before a stage writes: when ``Schema/verify(on:)`` passes, nothing is
    /// created (the importer role may not create anything); otherwise ``run(on:timeZone:ledgerSchema:logger:)``
    /// creates what is missing, which needs the owner's rights.
    ///
    /// - Throws: ``PipelineError`` 64 when the schema is incomplete and this role may not create it.
    package static func ensure(on db: PGConnection, timeZone: String, ledgerSchema: String) throws {
        // Besides what verify checks: the ledger's additive table, and the secondary indexes a killed first load
        // may have left dropped.
        let extra = [
            try db.quoteIdentifier(ledgerSchema) + ".sensor_day_stats", "sensor_readings_floor_number_timestamp_idx",
        ]
        func exists(_ name: String) throws -> Bool {
            try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [name]).scalar() == "t"
        }
        // A ledger from before chunk pieces is migrated by setup.
        let pieces = try db.exec(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'piece_start' AND NOT attisdropped)",
            parameters: [try db.quoteIdentifier(ledgerSchema) + ".loaded_chunks"]
        ).scalar() == "t"
        let schema = Schema(timeZone: timeZone, ledgerSchema: ledgerSchema)
        // Suspended keys: a killed first load's prebuilt indexes pass verify, but only setup attaches them.
        if pieces, (try? schema.verify(on: db)) != nil, try extra.allSatisfy(exists), try !schema.hasSuspendedKeys(on: db)
        {
            return
        }
        do {
            try Schema(timeZone: timeZone, ledgerSchema: ledgerSchema).setup(on: db)
            try LoadLedger(schema: ledgerSchema, timeZone: timeZone).ensureTables(on: db)
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw PipelineError.usage(
                "the database is not (completely) set up for bems and this role may not create it: "
                    + "run bems setup as the database owner first (\(error.message))")
        } catch let error as SchemaError {
            throw PipelineError.usage("\(error)")
        }
    }

    /// Whether the connected role owns `sensor_readings` (directly or through membership), which dropping and
    /// rebuilding its indexes needs. The importer role does not, so its first load keeps the indexes.
    package static func ownsReadings(on db: PGConnection) throws -> Bool {
        try db.exec(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)",
            parameters: [Schema.readingsTable]
        ).scalar() == "t"
    }

    /// Creates what is missing.
    ///
    /// - Throws: ``PipelineError`` 64 naming every problem when an existing object is incompatible or the time zone
    ///   is unknown; ``PostgresError`` otherwise.
    package static func run(
        on db: PGConnection, timeZone: String, ledgerSchema: String, logger: Logger
    ) throws -> Report {
        let ledgerTables = ["runs", "loaded_chunks", "replaced_readings", Schema.dirtyTable, "sensor_day_stats"]
        let objects =
            [
                Schema.readingsTable, "sensor_readings_floor_number_timestamp_idx",
                Schema.aggregatesTable, "daily_aggregates_key",
            ] + ledgerTables.map { ledgerSchema + "." + $0 }
        func exists(_ name: String) throws -> Bool {
            let quoted =
                name.contains(".")
                ? try name.split(separator: ".").map { try db.quoteIdentifier(String($0)) }.joined(separator: ".")
                : name
            return try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [quoted]).scalar() == "t"
        }
        let before = try objects.map(exists)
        do {
            try Schema(timeZone: timeZone, ledgerSchema: ledgerSchema).setup(on: db)
        } catch let error as SchemaError {
            throw PipelineError.usage("\(error)")
        }
        try LoadLedger(schema: ledgerSchema, timeZone: timeZone).ensureTables(on: db)
        let report = Report(objects: zip(objects, before).map { ($0, !$1) })
        logger.info("setup finished", metadata: ["created": "\(report.objects.filter(\.created).count)"])
        return report
    }
}
