import Testing

@testable import BEMSCore

@Suite(
    .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason),
    .timeLimit(.minutes(3))
)
struct SchemaTests {
    @Test func setupCreatesEverythingAndIsIdempotent() throws {
        try TestDatabase.withSchema { db, schema in
            let setup = Schema(ledgerSchema: schema)
            try setup.setup(on: db)
            try setup.setup(on: db)
            try setup.verify(on: db)
            let relations = try db.exec(
                "SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace ORDER BY relname",
                parameters: [schema]
            ).rows.compactMap { $0[0] }
            for name in [
                "sensor_readings", "sensor_readings_sensor_id_timestamp_key", "sensor_readings_floor_number_timestamp_idx", "daily_aggregates", "daily_aggregates_key", "runs",
                "loaded_chunks", "replaced_readings", "dirty_sensor_days",
            ] {
                #expect(relations.contains(name), "missing \(name)")
            }
            // Exactly one index per purpose after two setups.
            let indexCount = try db.exec(
                "SELECT count(*) FROM pg_index WHERE indrelid = 'sensor_readings'::regclass"
            ).scalarInt64()
            #expect(indexCount == 3)  // primary key, unique key, floor BRIN
            #expect(
                try db.exec(
                    """
                    SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam
                    WHERE c.oid = 'sensor_readings_floor_number_timestamp_idx'::regclass
                    """
                ).scalar() == "brin")
        }
    }

    @Test func aFloorBtreeFromAnEarlierSetupIsKept() throws {
        try TestDatabase.withSchema { db, schema in
            let setup = Schema(ledgerSchema: schema)
            try setup.setup(on: db)
            try db.exec("DROP INDEX sensor_readings_floor_number_timestamp_idx")
            try db.exec("CREATE INDEX floor_btree ON sensor_readings (floor_number, \"timestamp\")")
            try setup.setup(on: db)
            // Either serves the floor's time ranges: no second floor index.
            #expect(
                try db.exec("SELECT count(*) FROM pg_index WHERE indrelid = 'sensor_readings'::regclass").scalarInt64()
                    == 3)
            #expect(try db.exec("SELECT to_regclass('sensor_readings_floor_number_timestamp_idx') IS NULL").scalar() == "t")
        }
    }

    @Test func aTimestampBRINFromAnEarlierSetupIsKeptAndNotCreated() throws {
        try TestDatabase.withSchema { db, schema in
            let setup = Schema(ledgerSchema: schema)
            try setup.setup(on: db)
            #expect(try db.exec("SELECT to_regclass('sensor_readings_timestamp_brin') IS NULL").scalar() == "t")
            try db.exec("CREATE INDEX sensor_readings_timestamp_brin ON sensor_readings USING brin (\"timestamp\")")
            try setup.setup(on: db)
            try setup.verify(on: db)
            #expect(
                try db.exec("SELECT count(*) FROM pg_index WHERE indrelid = 'sensor_readings'::regclass").scalarInt64()
                    == 4)
        }
    }

    @Test func verifyReportsMissingObjectsWithoutCreatingThem() throws {
        try TestDatabase.withSchema { db, schema in
            let error = #expect(throws: SchemaError.self) { try Schema(ledgerSchema: schema).verify(on: db) }
            let text = try #require(error?.description)
            #expect(text.contains("sensor_readings: missing"))
            #expect(text.contains("daily_aggregates: missing"))
            #expect(text.contains("\(schema).runs: missing"))
            #expect(try db.exec("SELECT to_regclass('sensor_readings') IS NULL").scalar() == "t")
        }
    }

    @Test func readingsTableHasTheApplicationLayout() throws {
        try TestDatabase.withSchema { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            let columns = try db.exec(
                """
                SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale,
                       is_nullable, column_default
                FROM information_schema.columns
                WHERE table_schema = $1 AND table_name = 'sensor_readings'
                ORDER BY ordinal_position
                """,
                parameters: [schema]
            ).rows
            #expect(
                columns.map { $0[0] } == [
                    "id", "timestamp", "sensor_id", "floor_number", "equipment_type", "reading_value", "unit", "status",
                ]
            )
            #expect(columns[1][1] == "timestamp with time zone")
            #expect(columns[2][2] == "50")
            #expect(columns[4][2] == "100")
            #expect(columns[5][3] == "10" && columns[5][4] == "4")
            #expect(columns[7][6]?.hasPrefix("'normal'") == true)
            #expect(columns[0][6]?.hasPrefix("nextval(") == true)
        }
    }

    @Test func compatibleApplicationTableIsAccepted() throws {
        try TestDatabase.withSchema { db, schema in
            // As the application might create it: same columns, the key as a separately named unique index.
            try db.exec(
                """
                CREATE TABLE sensor_readings (
                    id BIGSERIAL PRIMARY KEY, timestamp TIMESTAMPTZ NOT NULL, sensor_id VARCHAR(50) NOT NULL,
                    floor_number INTEGER NOT NULL, equipment_type VARCHAR(100), reading_value DECIMAL(10,4),
                    unit VARCHAR(20), status VARCHAR(20) DEFAULT 'normal', note TEXT
                );
                CREATE UNIQUE INDEX app_readings_key ON sensor_readings (timestamp, sensor_id);
                """
            )
            try Schema(ledgerSchema: schema).setup(on: db)
            let unique = try db.exec(
                "SELECT count(*) FROM pg_index WHERE indrelid = 'sensor_readings'::regclass AND indisunique"
            ).scalarInt64()
            #expect(unique == 2)  // primary key + the application's key; no duplicate created
        }
    }

    @Test func incompatibleTableIsReportedClearly() throws {
        try TestDatabase.withSchema { db, schema in
            try db.exec(
                """
                CREATE TABLE sensor_readings (
                    id SERIAL PRIMARY KEY, timestamp TIMESTAMP NOT NULL, sensor_id VARCHAR(50) NOT NULL,
                    floor_number INTEGER NOT NULL, reading_value NUMERIC(12,2), unit VARCHAR(20),
                    status VARCHAR(20), owner TEXT NOT NULL
                )
                """
            )
            let error = #expect(throws: SchemaError.self) { try Schema(ledgerSchema: schema).setup(on: db) }
            let text = try #require(error?.description)
            #expect(error?.object == "sensor_readings")
            #expect(text.contains("column id has type integer, expected bigint"))
            #expect(text.contains("column timestamp has type timestamp without time zone"))
            #expect(text.contains("column equipment_type is missing"))
            #expect(text.contains("column reading_value has type numeric(12,2), expected numeric(10,4)"))
            #expect(text.contains("extra column owner is NOT NULL"))
            #expect(text.contains("no unique index"))
            // Nothing was created.
            #expect(try db.exec("SELECT to_regclass('daily_aggregates') IS NULL").scalar() == "t")
        }
    }

    @Test func incompatibleLedgerTableIsReported() throws {
        try TestDatabase.withSchema { db, schema in
            try db.exec("CREATE TABLE runs (id bigint PRIMARY KEY, stage text NOT NULL)")
            let error = #expect(throws: SchemaError.self) { try Schema(ledgerSchema: schema).setup(on: db) }
            #expect(error?.object == "\(schema).runs")
            #expect(error?.description.contains("column id has no default") == true)
            #expect(error?.description.contains("column env is missing") == true)
        }
    }

    @Test func viewInPlaceOfTheTableIsReported() throws {
        try TestDatabase.withSchema { db, schema in
            try db.exec("CREATE VIEW sensor_readings AS SELECT 1 AS id")
            let error = #expect(throws: SchemaError.self) { try Schema(ledgerSchema: schema).setup(on: db) }
            #expect(error?.description.contains("exists as a view") == true)
        }
    }

    @Test func unknownTimeZoneIsRejected() throws {
        try TestDatabase.withSchema { db, schema in
            let error = #expect(throws: SchemaError.self) {
                try Schema(timeZone: "Asia/Bangkok'; DROP TABLE x; --", ledgerSchema: schema).setup(on: db)
            }
            #expect(error?.kind == .invalidSetting)
        }
    }

    @Test func aggregatesForAnotherTimeZoneAreReported() throws {
        try TestDatabase.withSchema { db, schema in
            try Schema(timeZone: "UTC", ledgerSchema: schema).setup(on: db)
            let error = #expect(throws: SchemaError.self) { try Schema(ledgerSchema: schema).setup(on: db) }
            #expect(error?.object == "daily_aggregates")
            #expect(error?.description.contains("'Asia/Bangkok'") == true)
        }
    }

    @Test func dailyAggregatesUseBangkokDaysWhateverTheSessionTimeZone() throws {
        try TestDatabase.withSchema { db, schema in
            try db.exec("SET TimeZone = 'America/New_York'")
            try Schema(ledgerSchema: schema).setup(on: db)
            // Bangkok is UTC+7 all year.
            try db.exec(
                """
                INSERT INTO sensor_readings ("timestamp", sensor_id, floor_number, equipment_type, reading_value, unit)
                VALUES ('2019-01-01 00:30:00+07', 'f1_z1_light', 1, 'light', 1.5, 'kW'),
                       ('2019-01-01 23:30:00+07', 'f1_z1_light', 1, 'light', 2.5, 'kW'),
                       ('2019-01-02 00:10:00+07', 'f1_z1_light', 1, 'light', 4.0, 'kW')
                """
            )
            let first = try Schema(ledgerSchema: schema).refreshDailyAggregates(on: db)
            #expect(first.isFull, "the first refresh after setup recomputes the whole table")
            let rows = try db.exec(
                "SELECT date::text, reading_count::text, avg_value::text, max_value::text, min_value::text"
                    + " FROM daily_aggregates ORDER BY date"
            ).rows
            #expect(
                rows == [
                    ["2019-01-01", "2", "2.0000000000000000", "2.5000", "1.5000"],
                    ["2019-01-02", "1", "4.0000000000000000", "4.0000", "4.0000"],
                ]
            )
            #expect(try Schema(ledgerSchema: schema).refreshDailyAggregates(on: db, full: true).rowsInserted == 2)
            #expect(try db.exec("SELECT count(*) FROM daily_aggregates").scalarInt64() == 2)
        }
    }

    @Test func ledgerEnforcesItsInvariants() throws {
        try TestDatabase.withSchema { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            let run = try db.exec("INSERT INTO runs (stage, env) VALUES ('load', 'test') RETURNING id").scalar()
            let sha = String(repeating: "ab", count: 32)
            try db.exec(
                """
                INSERT INTO loaded_chunks (run_id, chunk_name, sha256, row_count, inserted, updated, min_ts, max_ts,
                                           inserted_ids)
                VALUES ($1, 'floor1-2019-01', $2, 10, 7, 2, '2019-01-01', '2019-01-31', '{[1,8)}')
                """,
                parameters: [run, sha]
            )
            try db.exec(
                """
                INSERT INTO replaced_readings (run_id, chunk_name, sensor_id, "timestamp", previous_value, previous_status)
                VALUES ($1, 'floor1-2019-01', 'f1_z1_light', '2019-01-01 00:00+07', 1.2345, 'normal')
                """,
                parameters: [run]
            )
            let badSha = #expect(throws: PostgresError.self) {
                try db.exec(
                    "INSERT INTO loaded_chunks (run_id, chunk_name, sha256, row_count, inserted, updated)"
                        + " VALUES ($1, 'x', 'nothex', 1, 1, 0)",
                    parameters: [run]
                )
            }
            #expect(badSha?.sqlState == "23514")
            let orphan = #expect(throws: PostgresError.self) {
                try db.exec(
                    "INSERT INTO replaced_readings (run_id, chunk_name, sensor_id, \"timestamp\")"
                        + " VALUES ($1, 'no-such-chunk', 's', now())",
                    parameters: [run]
                )
            }
            #expect(orphan?.sqlState == "23503")
        }
    }
}
