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

    /// Creates what is missing.
    ///
    /// - Throws: ``PipelineError`` 64 naming every problem when an existing object is incompatible or the time zone
    ///   is unknown; ``PostgresError`` otherwise.
    package static func run(
        on db: PGConnection, timeZone: String, ledgerSchema: String, logger: Logger
    ) throws -> Report {
        let objects =
            [
                Schema.readingsTable, "sensor_readings_timestamp_brin", "sensor_readings_floor_number_timestamp_idx",
                Schema.aggregatesView, "daily_aggregates_key",
            ] + ["runs", "loaded_chunks", "replaced_readings", "sensor_day_stats"].map { ledgerSchema + "." + $0 }
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
