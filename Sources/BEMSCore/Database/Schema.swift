/// The database objects the pipeline needs, created idempotently by ``setup(on:)``.
///
/// ## `sensor_readings`
///
/// One row per sensor and timestamp, exactly the application's layout (see ``createReadingsTableSQL``). The table,
/// the materialized view and their indexes are referenced unqualified, so they live in the first schema of the
/// connection's `search_path` (normally `public`).
///
/// Indexes, and why:
/// - `UNIQUE (sensor_id, "timestamp")` is the natural key. The loader's `INSERT … ON CONFLICT (sensor_id,
///   "timestamp")` needs it, and because `sensor_id` leads, the same btree serves per-sensor time-range queries
///   (`WHERE sensor_id = $1 AND "timestamp" BETWEEN $2 AND $3`), so no separate per-sensor index is kept.
/// - `BRIN (floor_number, "timestamp")`: per-floor dashboards, equality on the floor then a range on time, and
///   building-wide time ranges (all sensors for a day or week): a BRIN keeps each column's range per block range
///   and uses any of them on its own. A load writes floor-day chunks, so heap blocks correlate with both; a BRIN is
///   a few hundred kilobytes where a btree on ~100 M rows is gigabytes. Measured on the full dataset (123 M
///   readings): a floor's hourly averages over a week read 4 352 heap blocks through it, 190–366 ms, like the
///   229–330 ms of the btree it replaces, which took 965 MB (this one 432 kB) and 69 s of a first load's CPU to
///   build (this one 17 s). A database set up by an earlier bems keeps its btree (either serves).
/// - No BRIN on `"timestamp"` alone (earlier bems created `sensor_readings_timestamp_brin`): for one day of every
///   sensor the floor BRIN gave the same plan and read 8 869 buffers (8 859 through it), and a first load spent
///   about 13 s of CPU building it. An earlier database keeps it until its next first load, which builds the
///   indexes above.
///
/// ## `daily_aggregates`
///
/// A table of per-day, per-sensor statistics, with the columns, types and unique key of the application's
/// materialized view (`date, sensor_id, floor_number, equipment_type, avg_value, max_value, min_value,
/// reading_count`), so the application's `SELECT`s do not change. The day is the *building's* calendar day: the
/// time zone (default `Asia/Bangkok`) is a literal in the refresh function's SQL, never a session setting, and is
/// recorded in the table's comment, which ``setup(on:)`` checks. It is kept by ``refreshFunction``: exactly, per
/// sensor-day, from the pairs the loads and rollbacks recorded in `<ledger>.dirty_sensor_days` (see
/// ``createFunctionsSQL(ledger:home:timeZoneLiteral:)``). A materialized view left by an earlier bems is turned into
/// the table by ``setup(on:)``, in its transaction, keeping its rows and its grants.
///
/// ## Ledger (schema `bems` by default)
///
/// - `runs`: one row per stage execution (`id`, `stage`, `env`, `started_at`, `finished_at`, `status`
///   `running`/`succeeded`/`failed`/`rolled_back`, free-form `details` JSONB such as versions and counters).
/// - `loaded_chunks`: one row per chunk *piece* a load run committed (`run_id`, `chunk_name`, `sha256` of the chunk
///   file, `piece_start` (the piece's first row in the chunk file, 0 for a whole chunk), `row_count` (the piece's
///   rows), `inserted`, `updated` (the rest were unchanged), `min_ts`/`max_ts`, `inserted_ids` (the
///   `sensor_readings.id`s the piece inserted, as an `int8multirange`: one statement's ids are nearly contiguous, so
///   this stays tiny), `status` `committed`/`rolled_back`, `loaded_at`, and `rolled_back_at`/`rolled_back_by` set by
///   the run that undid it). It is written in the same transaction as the piece's rows, so it never disagrees with
///   the data. A chunk is normally one piece, rows `[0, row_count)`; after a statement timeout the loader commits it
///   in smaller pieces (see ``ChunkPieces``). The committed rows with the same `chunk_name` and `sha256` cover the
///   rows already loaded; when they cover the whole chunk it is skipped.
/// - `replaced_readings`: for every existing row a piece *updated*, the value and status it had before
///   (`run_id`, `chunk_name`, `piece_start`, `sensor_id`, `timestamp`, `previous_value`, `previous_status`).
/// - `dirty_sensor_days`: the `(sensor_id, day)` pairs (building days) whose readings changed since the last refresh
///   of `daily_aggregates`, written by every load piece and rollback in its own transaction and taken by the refresh.
///   The pair ``everySensorDay`` (`'*'`, `-infinity`) stands for every sensor-day: the next refresh recomputes the
///   whole table (set when the table is created, migrated or adopted).
///
/// Rolling back a piece is then: delete the rows whose `id` is in `inserted_ids`, restore every
/// `replaced_readings` row of the piece, mark the piece `rolled_back`. Roll back newest first.
///
/// A ledger created before pieces existed (primary key `(run_id, chunk_name)`) gets `piece_start` (0 for its rows)
/// and the new keys in ``setup(on:)``.
package struct Schema: Sendable {
    /// The building's time zone (CU-BEMS is in Bangkok).
    package static let defaultTimeZone = "Asia/Bangkok"
    /// The ledger schema name used in production.
    package static let defaultLedgerSchema = "bems"
    /// The readings table.
    package static let readingsTable = "sensor_readings"
    /// The daily aggregates table (a materialized view before; see ``setup(on:)``).
    package static let aggregatesTable = "daily_aggregates"
    /// The ledger table of the sensor-days whose aggregates must be recomputed.
    package static let dirtyTable = "dirty_sensor_days"
    /// The `dirty_sensor_days` pair that stands for every sensor-day (a full recompute), as SQL values.
    package static let everySensorDay = "('*', '-infinity'::date)"

    /// The IANA time zone that defines a "day" in `daily_aggregates`.
    package var timeZone: String
    /// The schema holding the ledger tables.
    package var ledgerSchema: String

    /// Describes the schema to set up.
    ///
    /// - Parameters:
    ///   - timeZone: A name from `pg_timezone_names`, checked by ``setup(on:)``.
    ///   - ledgerSchema: The schema for the ledger tables (tests use their own).
    package init(timeZone: String = Schema.defaultTimeZone, ledgerSchema: String = Schema.defaultLedgerSchema) {
        self.timeZone = timeZone
        self.ledgerSchema = ledgerSchema
    }

    // MARK: - Setup

    /// Creates whatever is missing, and checks what exists.
    ///
    /// Runs in one transaction under an advisory lock, so concurrent setups do not race. Existing objects are never
    /// altered, except: a ledger from before chunk pieces gets its `piece_start` columns and keys; a `daily_aggregates`
    /// materialized view becomes a table (same name, columns, rows, key and grants; its refresh function is replaced,
    /// keeping its `EXECUTE` grants). When one is incompatible, nothing is changed and a ``SchemaError`` names every
    /// problem.
    ///
    /// - Parameter db: An idle connection (no transaction open).
    /// - Throws: ``SchemaError`` for an unknown time zone or an incompatible existing object; ``PostgresError`` for
    ///   database failures.
    package func setup(on db: PGConnection) throws {
        try db.transaction {
            try db.exec("SELECT pg_advisory_xact_lock(hashtext('bems.schema.setup'))")
            try validateTimeZone(on: db)
            try setupReadings(on: db)
            try setupLedger(on: db)
            try setupAggregates(on: db)
            try setupFunctions(on: db)
        }
    }

    /// The `SECURITY DEFINER` functions through which a non-owner (the importer role) refreshes `daily_aggregates`
    /// and analyzes the tables: both need ownership, and owning the table would also let the importer drop it. They
    /// run with the rights of whoever ran `bems setup`, with a fixed `search_path`, and do nothing else.
    package static let refreshFunction = "refresh_daily_aggregates"
    package static let analyzeFunction = "analyze_readings"

    private func setupFunctions(on db: PGConnection) throws {
        guard
            let home = try db.exec(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                parameters: [Self.readingsTable]
            ).scalar()
        else { return }
        let ledger = try db.quoteIdentifier(ledgerSchema)
        let refresh = "\(ledger).\(Self.refreshFunction)(boolean)"
        // The refresh of the materialized view returned void and named its argument `concurrent`: CREATE OR REPLACE
        // cannot change either, so it is dropped and created again with the same EXECUTE grants.
        var grantees: [String] = []
        if try db.exec(
            "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE oid = to_regprocedure($1) AND prorettype = 'void'::regtype)",
            parameters: [refresh]
        ).scalar() == "t" {
            grantees = try db.exec(
                """
                SELECT quote_ident(r.rolname) FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
                WHERE p.oid = to_regprocedure($1) AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
                """, parameters: [refresh]
            ).rows.compactMap { $0[0] }
            try db.exec("DROP FUNCTION \(refresh)")
        }
        try db.exec(
            Self.createFunctionsSQL(
                ledger: ledger, home: try db.quoteIdentifier(home), timeZoneLiteral: try db.quoteLiteral(timeZone)))
        for role in grantees { try db.exec("GRANT EXECUTE ON FUNCTION \(refresh) TO \(role)") }
    }

    /// What one call of the refresh function did.
    package struct AggregatesRefresh: Sendable, Equatable {
        /// `incremental` (only the recorded sensor-days) or `full` (the whole table).
        package var mode: String
        /// The pairs taken from `dirty_sensor_days` (the marker for every sensor-day not counted).
        package var sensorDays: Int
        /// Rows of `daily_aggregates` deleted, and inserted again.
        package var rowsDeleted: Int
        package var rowsInserted: Int

        /// Whether the whole table was recomputed.
        package var isFull: Bool { mode == "full" }
    }

    /// Refreshes `daily_aggregates` through the ledger schema's function (works for the owner and the importer).
    ///
    /// - Parameter full: Recompute the whole table (also done without it when the table is marked for it, is empty
    ///   while readings exist, or more than half of its sensor-days changed).
    package func refreshDailyAggregates(on db: PGConnection, full: Bool = false) throws -> AggregatesRefresh {
        let r = try db.exec(
            "SELECT mode, sensor_days, rows_deleted, rows_inserted FROM "
                + "\(try db.quoteIdentifier(ledgerSchema)).\(Self.refreshFunction)($1::boolean)",
            parameters: [full ? "true" : "false"])
        return AggregatesRefresh(
            mode: r.string(row: 0, col: 0) ?? "", sensorDays: try r.int(row: 0, col: 1) ?? 0,
            rowsDeleted: try r.int(row: 0, col: 2) ?? 0, rowsInserted: try r.int(row: 0, col: 3) ?? 0)
    }

    /// Marks every sensor-day for the next refresh (``everySensorDay``), for changes made outside bems. Runs in the
    /// caller's transaction, if any.
    package func markAggregatesStale(on db: PGConnection) throws {
        try db.exec(
            "INSERT INTO \(try db.quoteIdentifier(ledgerSchema)).\(Self.dirtyTable) (sensor_id, day) VALUES "
                + "\(Self.everySensorDay) ON CONFLICT DO NOTHING")
    }

    /// `ANALYZE` of the readings table and `daily_aggregates`, through the ledger schema's function.
    package func analyze(on db: PGConnection) throws {
        try db.exec("SELECT \(try db.quoteIdentifier(ledgerSchema)).\(Self.analyzeFunction)()")
    }

    /// Checks, without changing anything, that every object exists and is compatible.
    ///
    /// - Throws: ``SchemaError`` naming what is missing or incompatible.
    package func verify(on db: PGConnection) throws {
        try validateTimeZone(on: db)
        var problems: [(String, [String])] = []
        func collect(_ object: String, _ check: () throws -> [String]) throws {
            let p = try check()
            if !p.isEmpty { problems.append((object, p)) }
        }
        try collect(Self.readingsTable) {
            guard let oid = try relation(Self.readingsTable, on: db, kinds: ["r", "p"]) else { return ["missing"] }
            return try readingsProblems(oid: oid, on: db)
        }
        try collect(Self.aggregatesTable) {
            guard let oid = try relation(Self.aggregatesTable, on: db, kinds: ["r", "m"]) else { return ["missing"] }
            if try isMaterializedView(oid, on: db) {
                return ["is a materialized view (an earlier bems); run bems setup to turn it into a table"]
            }
            return try aggregatesProblems(oid: oid, on: db)
        }
        for (table, columns) in Self.ledgerColumns {
            let name = try db.quoteIdentifier(ledgerSchema) + "." + table
            try collect(ledgerSchema + "." + table) {
                guard let oid = try relation(name, on: db, kinds: ["r", "p"]) else { return ["missing"] }
                return try columnProblems(oid: oid, expected: columns, on: db)
            }
        }
        for function in ["\(Self.refreshFunction)(boolean)", "\(Self.analyzeFunction)()"] {
            let name = try db.quoteIdentifier(ledgerSchema) + "." + function
            try collect(ledgerSchema + "." + function) {
                try db.exec("SELECT to_regprocedure($1) IS NULL", parameters: [name]).scalar() == "t" ? ["missing"] : []
            }
        }
        if !problems.isEmpty {
            throw SchemaError(
                kind: .incompatible,
                object: "database",
                problems: problems.map { "\($0.0): \($0.1.joined(separator: "; "))" }
            )
        }
    }


    // MARK: - Steps

    private func validateTimeZone(on db: PGConnection) throws {
        let known = try db.exec(
            "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)",
            parameters: [timeZone]
        ).scalar()
        guard known == "t" else {
            throw SchemaError(
                kind: .invalidSetting,
                object: "time zone",
                problems: ["'\(timeZone)' is not in pg_timezone_names"]
            )
        }
    }

    private func setupReadings(on db: PGConnection) throws {
        try restoreKeys(on: db)
        if let oid = try relation(Self.readingsTable, on: db, kinds: ["r", "p"]) {
            let problems = try readingsProblems(oid: oid, on: db)
            guard problems.isEmpty else {
                throw SchemaError(kind: .incompatible, object: Self.readingsTable, problems: problems)
            }
        } else {
            try db.exec(Self.createReadingsTableSQL)
        }
        let oid = try relation(Self.readingsTable, on: db, kinds: ["r", "p"]) ?? "0"
        let indexes = try self.indexes(oid: oid, on: db)
        if !indexes.contains(where: {
            ["brin", "btree"].contains($0.method) && $0.keys.starts(with: ["floor_number", "timestamp"])
        }) {
            try db.exec(Self.createReadingsFloorIndexSQL)
        }
    }

    private func setupAggregates(on db: PGConnection) throws {
        let zone = try db.quoteLiteral(timeZone)
        var stale = false
        if let oid = try relation(Self.aggregatesTable, on: db, kinds: ["r", "m"]) {
            if try isMaterializedView(oid, on: db) {
                let problems = try legacyViewProblems(oid: oid, on: db)
                guard problems.isEmpty else {
                    throw SchemaError(kind: .incompatible, object: Self.aggregatesTable, problems: problems)
                }
                try migrateAggregatesView(oid: oid, on: db)
                stale = true
            } else {
                let problems = try aggregatesProblems(oid: oid, on: db, requireUniqueIndex: false, requireZone: false)
                guard problems.isEmpty else {
                    throw SchemaError(kind: .incompatible, object: Self.aggregatesTable, problems: problems)
                }
                // Without a bems comment the table was not made by bems setup: adopted, recomputed once.
                stale =
                    try db.exec(
                        "SELECT coalesce(obj_description($1::oid, 'pg_class') NOT LIKE 'bems:%', true)",
                        parameters: [oid]
                    ).scalar() == "t"
            }
        } else {
            try db.exec(Self.createAggregatesTableSQL(timeZoneLiteral: zone))
            stale = true
        }
        try db.exec("COMMENT ON TABLE \(Self.aggregatesTable) IS \(try db.quoteLiteral(aggregatesComment(zone: zone)))")
        let oid = try relation(Self.aggregatesTable, on: db, kinds: ["r"]) ?? "0"
        let key = Set(["date", "sensor_id", "floor_number", "equipment_type"])
        if !(try indexes(oid: oid, on: db)).contains(where: { $0.isUsableUniqueKey && Set($0.keys) == key }) {
            try db.exec(Self.createAggregatesKeyIndexSQL)
        }
        if stale { try markAggregatesStale(on: db) }
    }

    /// The comment ``setup(on:)`` puts on `daily_aggregates`: it records the time zone of its days.
    private func aggregatesComment(zone: String) -> String {
        "bems: daily aggregates per sensor and building day in time zone \(zone), kept by "
            + "\(ledgerSchema).\(Self.refreshFunction)"
    }

    private func isMaterializedView(_ oid: String, on db: PGConnection) throws -> Bool {
        try db.exec("SELECT relkind = 'm' FROM pg_class WHERE oid = $1::oid", parameters: [oid]).scalar() == "t"
    }

    /// Turns the `daily_aggregates` materialized view of an earlier bems into a table with the same name, columns
    /// (types as the view's query produces them), rows (none when it was never populated) and grants. The unique key
    /// is created by the caller; the table is marked for a full recompute, since loads since the view's last
    /// refresh recorded no sensor-days. Runs inside ``setup(on:)``'s transaction: readers wait for it, then see the
    /// table.
    ///
    /// - Throws: ``SchemaError`` when other views depend on the view (they would have to be dropped).
    private func migrateAggregatesView(oid: String, on db: PGConnection) throws {
        let home = try db.quoteIdentifier(
            db.exec(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
                parameters: [oid]
            ).scalar() ?? "public")
        let view = "\(home).\(Self.aggregatesTable)"
        let staging = "\(Self.aggregatesTable)_bems_migrating"
        let populated =
            try db.exec("SELECT relispopulated FROM pg_class WHERE oid = $1::oid", parameters: [oid]).scalar() == "t"
        try db.exec("CREATE TABLE \(home).\(staging) AS SELECT * FROM \(view) WITH NO DATA")
        if populated { try db.exec("INSERT INTO \(home).\(staging) SELECT * FROM \(view)") }
        let grants = try privileges(of: oid, on: db)
        let dropped = Result { () throws(PostgresError) in try db.exec("DROP MATERIALIZED VIEW \(view)") }
        if case .failure(let error) = dropped {
            guard error.sqlState == "2BP01" else { throw error }
            throw SchemaError(
                kind: .incompatible, object: Self.aggregatesTable,
                problems: [
                    "is a materialized view that other objects depend on (\(error.detail ?? error.message)); bems makes "
                        + "it a table: drop them, run bems setup, then create them again"
                ])
        }
        try db.exec("ALTER TABLE \(home).\(staging) RENAME TO \(Self.aggregatesTable)")
        for grant in grants { try db.exec("GRANT \(grant.privileges) ON \(view) TO \(grant.grantee)") }
    }

    /// The privileges granted on a relation to roles other than its owner, one entry per grantee (`PUBLIC` for 0).
    private func privileges(of oid: String, on db: PGConnection) throws -> [(grantee: String, privileges: String)] {
        try db.exec(
            """
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
                   string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
            FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
            WHERE c.oid = $1::oid AND a.grantee <> c.relowner
            GROUP BY 1 ORDER BY 1
            """, parameters: [oid]
        ).rows.map { ($0[0] ?? "", $0[1] ?? "") }
    }

    private func setupLedger(on db: PGConnection) throws {
        let s = try db.quoteIdentifier(ledgerSchema)
        let dirtyExisted = try relation("\(s).\(Self.dirtyTable)", on: db, kinds: ["r", "p"]) != nil
        let chunksBefore = try relation("\(s).loaded_chunks", on: db, kinds: ["r", "p"])
        try db.exec(Self.createLedgerSQL(schema: s))
        // A ledger from before dirty_sensor_days: whoever may write loaded_chunks (the importer role) may write it.
        if !dirtyExisted, let chunksBefore {
            for grant in try privileges(of: chunksBefore, on: db) {
                try db.exec("GRANT \(grant.privileges) ON \(s).\(Self.dirtyTable) TO \(grant.grantee)")
            }
        }
        try migrateLedgerToPieces(on: db)
        for (table, columns) in Self.ledgerColumns {
            let name = try db.quoteIdentifier(ledgerSchema) + "." + table
            guard let oid = try relation(name, on: db, kinds: ["r", "p"]) else {
                throw SchemaError(
                    kind: .incompatible,
                    object: "\(ledgerSchema).\(table)",
                    problems: ["missing after setup"]
                )
            }
            let problems = try columnProblems(oid: oid, expected: columns, on: db)
            guard problems.isEmpty else {
                throw SchemaError(kind: .incompatible, object: "\(ledgerSchema).\(table)", problems: problems)
            }
        }
        try db.exec(Self.createLedgerIndexesSQL(schema: try db.quoteIdentifier(ledgerSchema)))
    }

    /// Brings a ledger created before chunk pieces existed up to date: adds `piece_start` (0, the whole chunk, for
    /// every existing row) to `loaded_chunks` and `replaced_readings`, and moves the primary key of `loaded_chunks`
    /// and the foreign key of `replaced_readings` to include it (creating them when missing). Does nothing (and takes
    /// no table lock) when the ledger is current. Runs inside ``setup(on:)``'s transaction and advisory lock.
    private func migrateLedgerToPieces(on db: PGConnection) throws {
        let s = try db.quoteIdentifier(ledgerSchema)
        let chunks = s + ".loaded_chunks"
        let replaced = s + ".replaced_readings"
        // Per table: whether piece_start exists; the primary key of loaded_chunks (name, whether it has piece_start);
        // the foreign keys of replaced_readings to loaded_chunks without piece_start, and whether one with it exists.
        let state = try db.exec(
            """
            WITH pk AS (
                SELECT conname, 'piece_start' = ANY (
                    SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY (conkey)) AS piece
                FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'
            ), fk AS (
                SELECT conname, 'piece_start' = ANY (
                    SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY (conkey)) AS piece
                FROM pg_constraint WHERE conrelid = to_regclass($2) AND contype = 'f' AND confrelid = to_regclass($1)
            )
            SELECT
                EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'piece_start'
                        AND NOT attisdropped),
                EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'piece_start'
                        AND NOT attisdropped),
                (SELECT conname FROM pk),
                coalesce((SELECT piece FROM pk), false),
                (SELECT string_agg(quote_ident(conname), ',') FROM fk WHERE NOT piece),
                EXISTS (SELECT 1 FROM fk WHERE piece)
            """,
            parameters: [chunks, replaced]
        ).rows[0]
        if state[0] != "t" {
            try db.exec(
                "ALTER TABLE \(chunks) ADD COLUMN piece_start BIGINT NOT NULL DEFAULT 0 CHECK (piece_start >= 0)")
        }
        if state[1] != "t" {
            try db.exec("ALTER TABLE \(replaced) ADD COLUMN piece_start BIGINT NOT NULL DEFAULT 0")
        }
        // Foreign keys on the old key go first: they depend on the primary key's index.
        for name in (state[4] ?? "").split(separator: ",") {
            try db.exec("ALTER TABLE \(replaced) DROP CONSTRAINT \(name)")
        }
        if state[3] != "t" {
            let drop = try state[2].map { "DROP CONSTRAINT \(try db.quoteIdentifier($0)), " } ?? ""
            try db.exec(
                "ALTER TABLE \(chunks) \(drop)ADD CONSTRAINT loaded_chunks_pkey PRIMARY KEY (run_id, chunk_name, piece_start)"
            )
        }
        if state[5] != "t" {
            try db.exec(
                """
                ALTER TABLE \(replaced) ADD CONSTRAINT replaced_readings_piece_fkey
                    FOREIGN KEY (run_id, chunk_name, piece_start)
                    REFERENCES \(chunks) (run_id, chunk_name, piece_start) ON DELETE CASCADE
                """)
        }
    }

    // MARK: - The keys during a first load

    /// The ledger table that remembers the keys a first load suspended: `(table_oid, constraint_name, definition,
    /// run_id, suspended_at)`, one row per key.
    package static let suspendedKeysTable = "suspended_keys"

    /// A key of `sensor_readings` a first load drops and rebuilds after its last chunk.
    package enum SuspendedKey: Sendable, CaseIterable {
        /// The natural key, `UNIQUE (sensor_id, "timestamp")`.
        case unique
        /// The primary key, `PRIMARY KEY (id)`.
        case primary

        /// The constraint's definition as `pg_get_constraintdef` prints it.
        var definition: String { self == .unique ? "UNIQUE (sensor_id, \"timestamp\")" : "PRIMARY KEY (id)" }
        /// `pg_constraint.contype`.
        var contype: String { self == .unique ? "u" : "p" }
        /// The key columns, quoted, in order.
        var columns: String { self == .unique ? "sensor_id, \"timestamp\"" : "id" }
        /// What the constraint is called in SQL (`UNIQUE`, `PRIMARY KEY`).
        var keyword: String { self == .unique ? "UNIQUE" : "PRIMARY KEY" }

        init?(definition: String) {
            guard let key = Self.allCases.first(where: { $0.definition == definition }) else { return nil }
            self = key
        }
    }

    /// Drops the unique constraint on `(sensor_id, "timestamp")` and the primary key on `(id)` of `sensor_readings`
    /// for a first load, and records their names and definitions in the ledger (``suspendedKeysTable``) in the same
    /// transaction, so that the next ``setup(on:)`` (the end of this load, any later load or `bems setup`) rebuilds
    /// them even when this process dies. Maintaining a btree row by row costs more than building it once:
    /// - the unique key almost twice (measured on 4 M readings in chunk order: 12.5 s against 6.8 s);
    /// - the primary key, although its ids only grow: two sessions' binary COPY of 2 × 20 M readings took 28.5 s
    ///   with it and 15.7 s without, and building it afterwards 6 s per 20 M (one index WAL record per row).
    ///
    /// - Returns: The keys suspended; none, having changed nothing, when the unique key is not a plain unique
    ///   constraint (a bare unique index created by the application is kept). The primary key is suspended with the
    ///   unique key when it is exactly `PRIMARY KEY (id)`; a key a foreign key depends on is never suspended.
    package func suspendKeys(on db: PGConnection, runID: Int64) throws -> [SuspendedKey] {
        let s = try db.quoteIdentifier(ledgerSchema)
        return try db.transaction { () throws -> [SuspendedKey] in
            func constraint(_ key: SuspendedKey) throws -> String? {
                try db.exec(
                    """
                    SELECT c.conname FROM pg_constraint c
                    WHERE c.conrelid = to_regclass($1) AND c.contype = $2 AND pg_get_constraintdef(c.oid) = $3
                      AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)
                    ORDER BY c.conname LIMIT 1
                    """, parameters: [Self.readingsTable, key.contype, key.definition]
                ).rows.first?[0] ?? nil
            }
            guard let unique = try constraint(.unique) else { return [] }
            var found: [(SuspendedKey, String)] = [(.unique, unique)]
            if let primary = try constraint(.primary) { found.append((.primary, primary)) }
            let table = "\(s).\(Self.suspendedKeysTable)"
            try db.exec(
                """
                CREATE TABLE IF NOT EXISTS \(table) (
                    table_oid       OID NOT NULL,
                    constraint_name TEXT NOT NULL,
                    definition      TEXT NOT NULL,
                    run_id          BIGINT,
                    suspended_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (table_oid, constraint_name)
                )
                """)
            // A ledger from before the primary key was suspended too: one row per table.
            if let old = try db.exec(
                """
                SELECT conname FROM pg_constraint
                WHERE conrelid = to_regclass($1) AND contype = 'p' AND cardinality(conkey) = 1
                """, parameters: [table]
            ).rows.first?[0] ?? nil {
                try db.exec(
                    "ALTER TABLE \(table) DROP CONSTRAINT \(try db.quoteIdentifier(old)),"
                        + " ADD PRIMARY KEY (table_oid, constraint_name)")
            }
            for (key, name) in found {
                try db.exec(
                    """
                    INSERT INTO \(table) (table_oid, constraint_name, definition, run_id)
                    VALUES (to_regclass($1)::oid, $2, $3, $4)
                    """, parameters: [Self.readingsTable, name, key.definition, String(runID)])
            }
            try db.exec(
                "ALTER TABLE \(Self.readingsTable) "
                    + (try found.map { "DROP CONSTRAINT \(try db.quoteIdentifier($0.1))" }.joined(separator: ", ")))
            return found.map(\.0)
        }
    }

    /// `CREATE UNIQUE INDEX <name> ON sensor_readings (<columns>)` for each suspended key, so they can be built
    /// alongside the other indexes (a plain `CREATE INDEX` lock, where `ALTER TABLE … ADD CONSTRAINT` would lock out
    /// the others); ``setup(on:)`` then attaches them as the constraints. Empty when no key is suspended; a record
    /// whose definition has more to it is left to setup.
    package func suspendedKeyIndexSQL(on db: PGConnection) throws -> [SuspendedKey: String] {
        var sql: [SuspendedKey: String] = [:]
        for (name, key) in try suspendedKeys(on: db) {
            sql[key] =
                "CREATE UNIQUE INDEX IF NOT EXISTS \(try db.quoteIdentifier(name))"
                + " ON \(Self.readingsTable) (\(key.columns))"
        }
        return sql
    }

    /// Whether keys of `sensor_readings` are recorded as suspended (a first load running, or killed before setup
    /// restored them): ``setup(on:)`` has work to do even when ``verify(on:)`` passes.
    package func hasSuspendedKeys(on db: PGConnection) throws -> Bool {
        try !suspendedKeyRecords(on: db).isEmpty
    }

    /// The recorded keys of `sensor_readings` whose definitions are known: `(constraint name, key)`.
    private func suspendedKeys(on db: PGConnection) throws -> [(String, SuspendedKey)] {
        try suspendedKeyRecords(on: db).compactMap { name, definition in
            SuspendedKey(definition: definition).map { (name, $0) }
        }
    }

    /// Every recorded key of `sensor_readings`, `(constraint name, definition)` by name; none when the ledger has
    /// no record table or there is no such table.
    private func suspendedKeyRecords(on db: PGConnection) throws -> [(String, String)] {
        let table = "\(try db.quoteIdentifier(ledgerSchema)).\(Self.suspendedKeysTable)"
        guard try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [table]).scalar() == "t" else { return [] }
        return try db.exec(
            """
            SELECT constraint_name, definition FROM \(table)
            WHERE table_oid = to_regclass($1)::oid ORDER BY constraint_name
            """, parameters: [Self.readingsTable]
        ).rows.compactMap { row in row[0].flatMap { name in row[1].map { (name, $0) } } }
    }

    /// Rebuilds the keys ``suspendKeys(on:runID:)`` recorded, unless the table has them again, and forgets the
    /// records. Runs first in ``setup(on:)``, inside its transaction.
    ///
    /// - Throws: ``PipelineError`` 65 when the table holds duplicate keys (written outside bems while they were
    ///   suspended); the records stay, so the next setup tries again once they are removed.
    private func restoreKeys(on db: PGConnection) throws {
        let s = try db.quoteIdentifier(ledgerSchema)
        let records = try suspendedKeyRecords(on: db)
        guard !records.isEmpty, let oid = try relation(Self.readingsTable, on: db, kinds: ["r", "p"]) else { return }
        for (name, definition) in records {
            let key = SuspendedKey(definition: definition)
            let quoted = try db.quoteIdentifier(name)
            // Built beforehand as a bare index (``suspendedKeyIndexSQL(on:)``): attach it as the constraint again.
            let prebuilt =
                try db.exec(
                    """
                    SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                    WHERE i.indrelid = $1::oid AND c.relname = $2 AND i.indisunique AND i.indisvalid
                      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid))
                    """, parameters: [oid, name]
                ).scalar() == "t"
            if let key, prebuilt {
                try db.exec(
                    "ALTER TABLE \(Self.readingsTable) ADD CONSTRAINT \(quoted) \(key.keyword) USING INDEX \(quoted)")
            } else if try !hasKey(key, definition: definition, oid: oid, on: db) {
                let sql = "ALTER TABLE \(Self.readingsTable) ADD CONSTRAINT \(quoted) \(definition)"
                let outcome = Result { () throws(PostgresError) in try db.exec(sql) }
                if case .failure(let error) = outcome {
                    guard error.sqlState == "23505" else { throw error }
                    let columns = key?.columns ?? definition
                    let table = Self.readingsTable
                    throw PipelineError.data(
                        "\(table) holds duplicate (\(columns)) rows, written outside bems while a first load had its "
                            + "keys suspended, so the key \(name) cannot be rebuilt; list them with SELECT \(columns), "
                            + "count(*) FROM \(table) GROUP BY \(columns) HAVING count(*) > 1, remove the extra rows, "
                            + "then run bems setup")
                }
            }
            try db.exec(
                "DELETE FROM \(s).\(Self.suspendedKeysTable) WHERE table_oid = $1::oid AND constraint_name = $2",
                parameters: [oid, name])
        }
    }

    /// Whether the table has the key again: a usable unique index on the natural key's columns, or a primary key.
    private func hasKey(_ key: SuspendedKey?, definition: String, oid: String, on db: PGConnection) throws -> Bool {
        switch key {
        case .unique:
            let columns = Set(["sensor_id", "timestamp"])
            return try indexes(oid: oid, on: db).contains { $0.isUsableUniqueKey && Set($0.keys) == columns }
        case .primary:
            return try db.exec(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::oid AND contype = 'p')",
                parameters: [oid]
            ).scalar() == "t"
        case nil:
            // A record from an older bems, whose unique key could have more to its definition.
            return definition.hasPrefix("UNIQUE (sensor_id, \"timestamp\")")
                ? try hasKey(.unique, definition: definition, oid: oid, on: db) : false
        }
    }

    // MARK: - Compatibility checks

    private func readingsProblems(oid: String, on db: PGConnection) throws -> [String] {
        var problems = try columnProblems(oid: oid, expected: Self.readingsColumns, on: db)
        let key = Set(["sensor_id", "timestamp"])
        if !(try indexes(oid: oid, on: db)).contains(where: { $0.isUsableUniqueKey && Set($0.keys) == key }) {
            let marker = "\(try db.quoteIdentifier(ledgerSchema)).\(Self.suspendedKeysTable)"
            let suspendedBy =
                try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [marker]).scalar() == "t"
                ? try db.exec(
                    "SELECT coalesce(run_id::text, '?') FROM \(marker) WHERE table_oid = $1::oid LIMIT 1",
                    parameters: [oid]
                ).scalar() : nil
            if let suspendedBy {
                problems.append(
                    "the unique key on (sensor_id, \"timestamp\") is suspended by a first load (ledger run "
                        + "\(suspendedBy)); that load rebuilds it when it ends, bems setup or the next load if it was "
                        + "killed")
            } else {
                problems.append(
                    "no unique index or constraint on exactly (sensor_id, \"timestamp\"); the loader's ON CONFLICT needs"
                        + " it (check for duplicates, then CREATE UNIQUE INDEX ON sensor_readings (sensor_id, \"timestamp\"))"
                )
            }
        }
        return problems
    }

    /// Problems of an existing `daily_aggregates` table: columns and types, the time zone in its comment (a comment
    /// by bems for another zone; a missing one too when `requireZone`), the unique key.
    private func aggregatesProblems(
        oid: String,
        on db: PGConnection,
        requireUniqueIndex: Bool = true,
        requireZone: Bool = true
    ) throws -> [String] {
        var problems = try aggregatesColumnProblems(oid: oid, on: db)
        if problems.isEmpty {
            problems = try columnProblems(oid: oid, expected: Self.aggregatesColumns, on: db)
        }
        let comment = try db.exec("SELECT obj_description($1::oid, 'pg_class')", parameters: [oid]).scalar()
        let zone = try db.quoteLiteral(timeZone)
        if let comment, comment.hasPrefix("bems:") {
            if !comment.contains("time zone \(zone),") {
                problems.append(
                    "is not grouped by days in time zone \(zone) (its comment: \(comment)); drop it (DROP TABLE "
                        + "\(Self.aggregatesTable)) and run setup again")
            }
        } else if requireZone {
            problems.append("records no time zone (it was not made by bems setup); run bems setup")
        }
        if requireUniqueIndex {
            let key = Set(["date", "sensor_id", "floor_number", "equipment_type"])
            if !(try indexes(oid: oid, on: db)).contains(where: { $0.isUsableUniqueKey && Set($0.keys) == key }) {
                problems.append("has no unique index on (date, sensor_id, floor_number, equipment_type)")
            }
        }
        return problems
    }

    /// The column names, in order, against the application's.
    private func aggregatesColumnProblems(oid: String, on db: PGConnection) throws -> [String] {
        let columns = try db.exec(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped"
                + " ORDER BY attnum",
            parameters: [oid]
        ).rows.map { $0[0] ?? "" }
        let expected = Self.aggregatesColumns.map(\.name)
        guard columns != expected else { return [] }
        return ["has columns (\(columns.joined(separator: ", "))), expected (\(expected.joined(separator: ", ")))"]
    }

    /// Problems of the materialized view of an earlier bems that keep it from being migrated: its columns, and
    /// days in another time zone.
    private func legacyViewProblems(oid: String, on db: PGConnection) throws -> [String] {
        var problems = try aggregatesColumnProblems(oid: oid, on: db)
        let definition = try db.exec("SELECT pg_get_viewdef($1::oid)", parameters: [oid]).scalar() ?? ""
        let zone = try db.quoteLiteral(timeZone)
        if !definition.contains("AT TIME ZONE \(zone)") {
            problems.append(
                "is not grouped by days in time zone \(zone); drop it (DROP MATERIALIZED VIEW \(Self.aggregatesTable))"
                    + " and run setup again"
            )
        }
        return problems
    }

    /// Compares a relation's columns with the expected ones.
    private func columnProblems(oid: String, expected: [ColumnSpec], on db: PGConnection) throws -> [String] {
        let rows = try db.exec(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
            FROM pg_attribute a
            WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            parameters: [oid]
        ).rows
        struct Actual {
            let type: String
            let notNull: Bool
            let hasDefault: Bool
        }
        var actual: [String: Actual] = [:]
        for row in rows {
            actual[row[0] ?? ""] = Actual(type: row[1] ?? "", notNull: row[2] == "t", hasDefault: row[3] == "t")
        }
        var problems: [String] = []
        for column in expected {
            guard let found = actual[column.name] else {
                problems.append("column \(column.name) is missing")
                continue
            }
            if found.type != column.type {
                problems.append("column \(column.name) has type \(found.type), expected \(column.type)")
            }
            if column.needsDefault, !found.hasDefault {
                problems.append("column \(column.name) has no default")
            }
            if !column.notNull, found.notNull, !found.hasDefault {
                problems.append("column \(column.name) is NOT NULL, but the pipeline may store NULL in it")
            }
        }
        let known = Set(expected.map(\.name))
        for row in rows {
            let name = row[0] ?? ""
            if !known.contains(name), let found = actual[name], found.notNull, !found.hasDefault {
                problems.append("extra column \(name) is NOT NULL without a default, so the pipeline cannot insert")
            }
        }
        return problems
    }

    /// The OID of a relation resolved through `search_path` (or schema-qualified), if it exists.
    ///
    /// - Throws: ``SchemaError`` when the name exists with another kind (for example a plain view).
    private func relation(_ name: String, on db: PGConnection, kinds: Set<String>) throws -> String? {
        let result = try db.exec(
            "SELECT c.oid::text, c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)",
            parameters: [name]
        )
        guard let row = result.rows.first, let oid = row[0] else { return nil }
        let kind = row[1] ?? "?"
        guard kinds.contains(kind) else {
            let names = [
                "r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
                "f": "foreign table", "i": "index", "S": "sequence",
            ]
            let wanted = kinds.sorted().compactMap { names[$0] }.joined(separator: " or ")
            throw SchemaError(
                kind: .incompatible,
                object: name,
                problems: ["exists as a \(names[kind] ?? "relation of kind \(kind)"), expected a \(wanted)"]
            )
        }
        return oid
    }

    private struct IndexInfo {
        let method: String
        let isUsableUniqueKey: Bool
        let keys: [String]
    }

    /// The valid indexes of a relation with their key columns in order (expression columns appear as `""`).
    private func indexes(oid: String, on db: PGConnection) throws -> [IndexInfo] {
        try db.exec(
            """
            SELECT am.amname,
                   i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL,
                   (SELECT string_agg(coalesce(a.attname, ''), ',' ORDER BY k.ord)
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                    WHERE k.ord <= i.indnkeyatts)
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am am ON am.oid = c.relam
            WHERE i.indrelid = $1::oid AND i.indisvalid
            """,
            parameters: [oid]
        ).rows.map { row in
            IndexInfo(
                method: row[0] ?? "",
                isUsableUniqueKey: row[1] == "t",
                keys: (row[2] ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            )
        }
    }
}

// MARK: - Expected columns

extension Schema {
    /// A column the pipeline relies on, with the type as `format_type` prints it.
    struct ColumnSpec: Sendable {
        let name: String
        let type: String
        let notNull: Bool
        /// The pipeline never writes this column, so it needs a default (for example `id`).
        var needsDefault = false
    }

    static let readingsColumns: [ColumnSpec] = [
        ColumnSpec(name: "id", type: "bigint", notNull: true, needsDefault: true),
        ColumnSpec(name: "timestamp", type: "timestamp with time zone", notNull: true),
        ColumnSpec(name: "sensor_id", type: "character varying(50)", notNull: true),
        ColumnSpec(name: "floor_number", type: "integer", notNull: true),
        ColumnSpec(name: "equipment_type", type: "character varying(100)", notNull: false),
        ColumnSpec(name: "reading_value", type: "numeric(10,4)", notNull: false),
        ColumnSpec(name: "unit", type: "character varying(20)", notNull: false),
        ColumnSpec(name: "status", type: "character varying(20)", notNull: false),
    ]

    /// `daily_aggregates`, as the application's view produced them (and as ``createAggregatesTableSQL(timeZoneLiteral:)``
    /// creates them).
    static let aggregatesColumns: [ColumnSpec] = [
        ColumnSpec(name: "date", type: "date", notNull: false),
        ColumnSpec(name: "sensor_id", type: "character varying(50)", notNull: false),
        ColumnSpec(name: "floor_number", type: "integer", notNull: false),
        ColumnSpec(name: "equipment_type", type: "character varying(100)", notNull: false),
        ColumnSpec(name: "avg_value", type: "numeric", notNull: false),
        ColumnSpec(name: "max_value", type: "numeric", notNull: false),
        ColumnSpec(name: "min_value", type: "numeric", notNull: false),
        ColumnSpec(name: "reading_count", type: "bigint", notNull: false),
    ]

    static let ledgerColumns: [(String, [ColumnSpec])] = [
        (
            "runs",
            [
                ColumnSpec(name: "id", type: "bigint", notNull: true, needsDefault: true),
                ColumnSpec(name: "stage", type: "text", notNull: true),
                ColumnSpec(name: "env", type: "text", notNull: true),
                ColumnSpec(name: "started_at", type: "timestamp with time zone", notNull: true),
                ColumnSpec(name: "finished_at", type: "timestamp with time zone", notNull: false),
                ColumnSpec(name: "status", type: "text", notNull: true),
                ColumnSpec(name: "details", type: "jsonb", notNull: true),
            ]
        ),
        (
            "loaded_chunks",
            [
                ColumnSpec(name: "run_id", type: "bigint", notNull: true),
                ColumnSpec(name: "chunk_name", type: "text", notNull: true),
                ColumnSpec(name: "sha256", type: "text", notNull: true),
                ColumnSpec(name: "piece_start", type: "bigint", notNull: true),
                ColumnSpec(name: "row_count", type: "bigint", notNull: true),
                ColumnSpec(name: "inserted", type: "bigint", notNull: true),
                ColumnSpec(name: "updated", type: "bigint", notNull: true),
                ColumnSpec(name: "min_ts", type: "timestamp with time zone", notNull: false),
                ColumnSpec(name: "max_ts", type: "timestamp with time zone", notNull: false),
                ColumnSpec(name: "inserted_ids", type: "int8multirange", notNull: false),
                ColumnSpec(name: "status", type: "text", notNull: true),
                ColumnSpec(name: "loaded_at", type: "timestamp with time zone", notNull: true),
                ColumnSpec(name: "rolled_back_at", type: "timestamp with time zone", notNull: false),
                ColumnSpec(name: "rolled_back_by", type: "bigint", notNull: false),
            ]
        ),
        (
            "replaced_readings",
            [
                ColumnSpec(name: "run_id", type: "bigint", notNull: true),
                ColumnSpec(name: "chunk_name", type: "text", notNull: true),
                ColumnSpec(name: "piece_start", type: "bigint", notNull: true),
                ColumnSpec(name: "sensor_id", type: "character varying(50)", notNull: true),
                ColumnSpec(name: "timestamp", type: "timestamp with time zone", notNull: true),
                ColumnSpec(name: "previous_value", type: "numeric(10,4)", notNull: false),
                ColumnSpec(name: "previous_status", type: "character varying(20)", notNull: false),
            ]
        ),
        (
            dirtyTable,
            [
                ColumnSpec(name: "sensor_id", type: "character varying(50)", notNull: true),
                ColumnSpec(name: "day", type: "date", notNull: true),
            ]
        ),
    ]
}

// MARK: - SQL

extension Schema {
    /// The maintenance functions (see ``refreshFunction``).
    ///
    /// `refresh_daily_aggregates(full_refresh)` runs in the caller's transaction (one statement), so readers see the
    /// old rows or the new ones:
    /// 1. A transaction-level advisory lock: one refresh at a time.
    /// 2. Takes the pairs of `dirty_sensor_days`, locking them in key order, then deletes them. A load or rollback
    ///    that is still writing holds its pairs locked (it inserts them with `ON CONFLICT … DO UPDATE … WHERE false`,
    ///    which locks an existing pair), so the refresh waits for it, and every pair taken belongs to a committed
    ///    change, which the next statements see (each statement of the function takes a new snapshot).
    /// 3. Incremental: deletes the taken sensor-days from `daily_aggregates` and inserts them computed from
    ///    `sensor_readings` with the application view's `GROUP BY`, reading only those sensors over those days (range
    ///    scans of the `(sensor_id, "timestamp")` key); a sensor-day without readings left stays deleted.
    /// 4. Full (`full_refresh`, the ``everySensorDay`` marker, an empty table while readings exist, or more than half
    ///    of the table's sensor-days taken): deletes every row and inserts the whole `GROUP BY` (a `DELETE`, not a
    ///    `TRUNCATE`, so readers are never blocked).
    ///
    /// It returns the mode, the pairs taken and the rows deleted and inserted.
    package static func createFunctionsSQL(ledger s: String, home h: String, timeZoneLiteral tz: String) -> String {
        let columns = "date, sensor_id, floor_number, equipment_type, avg_value, max_value, min_value, reading_count"
        let lockKey = "'bems.refresh:" + "\(h).\(s)".replacingOccurrences(of: "'", with: "''") + "'"
        let aggregates = """
            SELECT (r."timestamp" AT TIME ZONE \(tz))::date, r.sensor_id, r.floor_number, r.equipment_type,
                       AVG(r.reading_value), MAX(r.reading_value), MIN(r.reading_value), COUNT(*)
            """
        return """
            CREATE OR REPLACE FUNCTION \(s).\(refreshFunction)(full_refresh boolean)
                RETURNS TABLE (mode text, sensor_days bigint, rows_deleted bigint, rows_inserted bigint)
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
            DECLARE
                sensors varchar[];
                days date[];
                taken bigint;
                everything boolean;
                removed bigint;
                added bigint;
            BEGIN
                PERFORM pg_advisory_xact_lock(hashtext(\(lockKey)));
                SELECT array_agg(k.sensor_id ORDER BY k.sensor_id, k.day) FILTER (WHERE k.day <> '-infinity'),
                       array_agg(k.day ORDER BY k.sensor_id, k.day) FILTER (WHERE k.day <> '-infinity'),
                       count(*) FILTER (WHERE k.day <> '-infinity'),
                       coalesce(bool_or(k.day = '-infinity'), false)
                  INTO sensors, days, taken, everything
                  FROM (SELECT d.sensor_id, d.day FROM \(s).\(dirtyTable) d
                        ORDER BY d.sensor_id, d.day FOR UPDATE) k;
                DELETE FROM \(s).\(dirtyTable) d
                 WHERE d.day = '-infinity' AND everything
                    OR (d.sensor_id, d.day) IN (SELECT * FROM unnest(sensors, days));
                everything := full_refresh OR everything
                    OR (NOT EXISTS (SELECT 1 FROM \(h).\(aggregatesTable))
                        AND EXISTS (SELECT 1 FROM \(h).\(readingsTable)))
                    OR taken * 2 > (SELECT count(*) FROM \(h).\(aggregatesTable));
                IF everything THEN
                    DELETE FROM \(h).\(aggregatesTable);
                    GET DIAGNOSTICS removed = ROW_COUNT;
                    INSERT INTO \(h).\(aggregatesTable) (\(columns))
                    \(aggregates)
                    FROM \(h).\(readingsTable) r
                    GROUP BY 1, 2, 3, 4;
                    GET DIAGNOSTICS added = ROW_COUNT;
                    RETURN QUERY SELECT 'full'::text, taken, removed, added;
                ELSE
                    DELETE FROM \(h).\(aggregatesTable) a
                     USING unnest(sensors, days) AS t(sensor_id, day)
                     WHERE a.sensor_id = t.sensor_id AND a.date = t.day;
                    GET DIAGNOSTICS removed = ROW_COUNT;
                    -- One range read of the (sensor_id, "timestamp") key per pair: the LATERAL keeps the planner
                    -- from hashing the pairs against a scan of the whole table (it did, at 123 M readings).
                    INSERT INTO \(h).\(aggregatesTable) (\(columns))
                    SELECT t.day, t.sensor_id, x.floor_number, x.equipment_type, x.a, x.mx, x.mn, x.c
                    FROM unnest(sensors, days) AS t(sensor_id, day)
                    CROSS JOIN LATERAL (
                        SELECT r.floor_number, r.equipment_type, AVG(r.reading_value) AS a,
                               MAX(r.reading_value) AS mx, MIN(r.reading_value) AS mn, COUNT(*) AS c
                        FROM \(h).\(readingsTable) r
                        WHERE r.sensor_id = t.sensor_id
                          AND r."timestamp" >= (t.day::timestamp AT TIME ZONE \(tz))
                          AND r."timestamp" < ((t.day + 1)::timestamp AT TIME ZONE \(tz))
                        GROUP BY r.floor_number, r.equipment_type
                    ) x;
                    GET DIAGNOSTICS added = ROW_COUNT;
                    RETURN QUERY SELECT 'incremental'::text, taken, removed, added;
                END IF;
            END $fn$;
            CREATE OR REPLACE FUNCTION \(s).\(analyzeFunction)() RETURNS void
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
            BEGIN
                ANALYZE \(h).\(readingsTable);
                ANALYZE \(h).\(aggregatesTable);
            END $fn$;
            REVOKE ALL ON FUNCTION \(s).\(refreshFunction)(boolean) FROM PUBLIC;
            REVOKE ALL ON FUNCTION \(s).\(analyzeFunction)() FROM PUBLIC;
            """
    }

    /// The readings table, exactly as the application defines it, with its natural key.
    package static let createReadingsTableSQL = """
        CREATE TABLE sensor_readings (
            id             BIGSERIAL PRIMARY KEY,
            "timestamp"    TIMESTAMPTZ NOT NULL,
            sensor_id      VARCHAR(50) NOT NULL,
            floor_number   INTEGER NOT NULL,
            equipment_type VARCHAR(100),
            reading_value  DECIMAL(10,4),
            unit           VARCHAR(20),
            status         VARCHAR(20) DEFAULT 'normal',
            CONSTRAINT sensor_readings_sensor_id_timestamp_key UNIQUE (sensor_id, "timestamp")
        )
        """

    /// BRIN index for per-floor and building-wide time-range queries (see the type's notes).
    package static let createReadingsFloorIndexSQL = """
        CREATE INDEX IF NOT EXISTS sensor_readings_floor_number_timestamp_idx
            ON sensor_readings USING brin (floor_number, "timestamp")
        """

    /// The `daily_aggregates` table, empty, with the columns and types of the application's view (created from its
    /// query `WITH NO DATA`, so they are exactly what the view produced).
    ///
    /// - Parameter timeZoneLiteral: The time zone as a quoted SQL literal, for example `'Asia/Bangkok'`.
    package static func createAggregatesTableSQL(timeZoneLiteral: String) -> String {
        "CREATE TABLE daily_aggregates AS " + aggregatesQuery(timeZoneLiteral: timeZoneLiteral) + " WITH NO DATA"
    }

    /// The materialized view of bems before `daily_aggregates` became a table (tests of the migration create it).
    package static func createLegacyAggregatesViewSQL(timeZoneLiteral: String) -> String {
        "CREATE MATERIALIZED VIEW daily_aggregates AS " + aggregatesQuery(timeZoneLiteral: timeZoneLiteral)
            + " WITH DATA"
    }

    /// The application's view query, with the day in the building's time zone.
    static func aggregatesQuery(timeZoneLiteral: String) -> String {
        """
        SELECT ("timestamp" AT TIME ZONE \(timeZoneLiteral))::date AS date,
               sensor_id,
               floor_number,
               equipment_type,
               AVG(reading_value) AS avg_value,
               MAX(reading_value) AS max_value,
               MIN(reading_value) AS min_value,
               COUNT(*) AS reading_count
        FROM sensor_readings
        GROUP BY 1, 2, 3, 4
        """
    }

    /// The unique key of `daily_aggregates` (the view's, which `REFRESH … CONCURRENTLY` needed).
    package static let createAggregatesKeyIndexSQL = """
        CREATE UNIQUE INDEX IF NOT EXISTS daily_aggregates_key
            ON daily_aggregates (date, sensor_id, floor_number, equipment_type)
        """

    /// The ledger's lookup index for "was this chunk already loaded?", created after the columns were checked.
    ///
    /// - Parameter schema: The quoted schema name.
    package static func createLedgerIndexesSQL(schema s: String) -> String {
        """
        CREATE INDEX IF NOT EXISTS loaded_chunks_committed_idx
            ON \(s).loaded_chunks (chunk_name, sha256) WHERE status = 'committed'
        """
    }

    /// The ledger schema and tables (see the type documentation for the meaning of each column).
    ///
    /// - Parameter schema: The quoted schema name.
    package static func createLedgerSQL(schema s: String) -> String {
        """
        CREATE SCHEMA IF NOT EXISTS \(s);

        CREATE TABLE IF NOT EXISTS \(s).runs (
            id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            stage       TEXT NOT NULL,
            env         TEXT NOT NULL,
            started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            status      TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed', 'rolled_back')),
            details     JSONB NOT NULL DEFAULT '{}'::jsonb
        );
        COMMENT ON TABLE \(s).runs IS 'One row per pipeline stage execution (bems).';

        CREATE TABLE IF NOT EXISTS \(s).loaded_chunks (
            run_id         BIGINT NOT NULL REFERENCES \(s).runs (id),
            chunk_name     TEXT NOT NULL,
            sha256         TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            piece_start    BIGINT NOT NULL DEFAULT 0 CHECK (piece_start >= 0),
            row_count      BIGINT NOT NULL CHECK (row_count >= 0),
            inserted       BIGINT NOT NULL CHECK (inserted >= 0),
            updated        BIGINT NOT NULL CHECK (updated >= 0),
            min_ts         TIMESTAMPTZ,
            max_ts         TIMESTAMPTZ,
            inserted_ids   INT8MULTIRANGE,
            status         TEXT NOT NULL DEFAULT 'committed' CHECK (status IN ('committed', 'rolled_back')),
            loaded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            rolled_back_at TIMESTAMPTZ,
            rolled_back_by BIGINT REFERENCES \(s).runs (id),
            CONSTRAINT loaded_chunks_pkey PRIMARY KEY (run_id, chunk_name, piece_start),
            CHECK (inserted + updated <= row_count),
            CHECK (min_ts <= max_ts),
            CHECK ((status = 'rolled_back') = (rolled_back_at IS NOT NULL))
        );
        COMMENT ON TABLE \(s).loaded_chunks IS
            'Chunks committed by load runs; written in the same transaction as their rows (bems).';

        CREATE TABLE IF NOT EXISTS \(s).replaced_readings (
            run_id          BIGINT NOT NULL,
            chunk_name      TEXT NOT NULL,
            piece_start     BIGINT NOT NULL DEFAULT 0,
            sensor_id       VARCHAR(50) NOT NULL,
            "timestamp"     TIMESTAMPTZ NOT NULL,
            previous_value  DECIMAL(10,4),
            previous_status VARCHAR(20),
            PRIMARY KEY (run_id, chunk_name, sensor_id, "timestamp"),
            CONSTRAINT replaced_readings_piece_fkey FOREIGN KEY (run_id, chunk_name, piece_start)
                REFERENCES \(s).loaded_chunks (run_id, chunk_name, piece_start) ON DELETE CASCADE
        );
        COMMENT ON TABLE \(s).replaced_readings IS
            'Previous value and status of each sensor_readings row a chunk updated, for rollback (bems).';

        CREATE TABLE IF NOT EXISTS \(s).\(dirtyTable) (
            sensor_id VARCHAR(50) NOT NULL,
            day       DATE NOT NULL,
            PRIMARY KEY (sensor_id, day)
        );
        COMMENT ON TABLE \(s).\(dirtyTable) IS
            'Sensor-days (building days) changed since the last refresh of daily_aggregates; (''*'', -infinity): all (bems).';
        """
    }
}

// MARK: - SchemaError

/// An existing database object the pipeline cannot use, or a bad schema setting.
package struct SchemaError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    package enum Kind: Sendable, Equatable {
        /// An existing object does not match what the pipeline needs (or is missing, for ``Schema/verify(on:)``).
        case incompatible
        /// A setting such as the time zone is invalid.
        case invalidSetting
    }

    /// What went wrong.
    package let kind: Kind
    /// The object, for example `sensor_readings`, `bems.runs` or `time zone`.
    package let object: String
    /// Every problem found, each a short sentence.
    package let problems: [String]

    /// Creates an error.
    package init(kind: Kind, object: String, problems: [String]) {
        self.kind = kind
        self.object = object
        self.problems = problems
    }

    package var description: String {
        switch kind {
        case .incompatible: return "\(object) is incompatible with the pipeline: " + problems.joined(separator: "; ")
        case .invalidSetting: return "invalid \(object): " + problems.joined(separator: "; ")
        }
    }
}
