import Foundation
import Testing

@testable import BEMSCore

/// `daily_aggregates` as a table kept per sensor-day: after loads, updates, rollbacks and refreshes it must equal a
/// full recompute with the application's `GROUP BY`, row for row and value for value.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct IncrementalAggregatesTests {
    /// Rows of `daily_aggregates` not in a full recompute, plus rows of the recompute not in the table, plus the
    /// difference in row counts (duplicates): 0 when they are equal.
    static let checksumSQL = "SELECT md5(string_agg(a::text, ',' ORDER BY a::text)) FROM daily_aggregates a"

    static func differences(_ db: PGConnection) throws -> Int {
        let recompute = Schema.aggregatesQuery(timeZoneLiteral: "'Asia/Bangkok'")
        return Int(
            try db.exec(
                """
                SELECT (SELECT count(*) FROM (SELECT * FROM daily_aggregates EXCEPT \(recompute)) a)
                     + (SELECT count(*) FROM (\(recompute) EXCEPT SELECT * FROM daily_aggregates) b)
                     + abs((SELECT count(*) FROM daily_aggregates) - (SELECT count(*) FROM (\(recompute)) c))
                """
            ).scalarInt64() ?? -1)
    }

    func refresh(_ f: LoadFixture, force: Bool = false) async throws -> RefreshReport {
        var options = RefreshStage.Options(config: f.config, env: "dev")
        options.database = f.target
        options.ledgerSchema = f.schema
        options.force = force
        let result = try await RefreshStage.run(options, logger: f.logger)
        #expect(!result.upToDate)
        return result.report
    }

    @Test func incrementalRefreshEqualsAFullRecomputeThroughLoadsUpdatesAndRollbacks() async throws {
        try await withLoadFixture { f in
            // Load 1: 4 sensors over 8 Bangkok days (2019-01-01 08:00 Bangkok on).
            let start: Int64 = 1_546_304_400
            try f.publishDedupe(LoadFixture.readings(sensorsPerFloor: 2, start: start, minutes: 8 * 1440))
            _ = try await f.load()
            let first = try await refresh(f)
            #expect(first.mode == "full", "the first refresh after setup recomputes everything")
            #expect(try Self.differences(f.db) == 0)
            let afterLoad1 = try f.db.exec(Self.checksumSQL).scalar()
            #expect(try f.count("SELECT count(*) FROM dirty_sensor_days") == 0)

            // Load 2: a day and a half later, every third reading changed (updates) and new readings (inserts).
            var second = LoadFixture.readings(sensorsPerFloor: 2, start: start + 7 * 86_400, minutes: 1440 + 720)
            for i in second.indices where i % 3 == 0 { second[i].value += 7 }
            try f.publishDedupe(second)
            let load2 = try await f.load()
            #expect(load2.inserted > 0 && load2.updated > 0)
            let pending = try f.count("SELECT count(*) FROM dirty_sensor_days")
            #expect(pending > 0)
            let r2 = try await refresh(f)
            #expect(r2.mode == "incremental" && r2.sensorDays == pending)
            #expect(r2.rowsDeleted > 0 && r2.rowsInserted == pending)
            #expect(try Self.differences(f.db) == 0)

            // Load 3: a sensor of floor 3 on a day of its own.
            try f.publishDedupe(
                LoadFixture.readings(floors: 3...3, sensorsPerFloor: 1, start: start + 2 * 86_400, minutes: 300))
            _ = try await f.load()
            let r3 = try await refresh(f)
            #expect(r3.mode == "incremental" && r3.sensorDays == 1 && r3.rowsDeleted == 0 && r3.rowsInserted == 1)
            #expect(try f.count("SELECT count(*) FROM daily_aggregates WHERE floor_number = 3") == 1)
            #expect(try Self.differences(f.db) == 0)

            // Rolling load 3 back empties its sensor-day: the refresh deletes it and inserts nothing.
            _ = try f.rollback()
            #expect(try f.count("SELECT count(*) FROM dirty_sensor_days") == 1)
            let r4 = try await refresh(f)
            #expect(r4.mode == "incremental" && r4.sensorDays == 1 && r4.rowsDeleted == 1 && r4.rowsInserted == 0)
            #expect(try f.count("SELECT count(*) FROM daily_aggregates WHERE floor_number = 3") == 0)
            #expect(try Self.differences(f.db) == 0)

            // Rolling load 2 back (restored values, deleted inserts) gives load 1's aggregates again.
            _ = try f.rollback()
            let r5 = try await refresh(f)
            #expect(r5.mode == "incremental")
            #expect(try Self.differences(f.db) == 0)
            let now = try f.db.exec(Self.checksumSQL).scalar()
            #expect(now == afterLoad1)

            // A change made outside bems is not recorded: a plain refresh misses it, --force recomputes everything.
            try f.db.exec(
                "UPDATE sensor_readings SET reading_value = reading_value + 1 "
                    + "WHERE id = (SELECT min(id) FROM sensor_readings)")
            try f.db.exec("INSERT INTO runs (stage, env, status) VALUES ('load', 'dev', 'succeeded')")
            try f.db.exec(
                "INSERT INTO loaded_chunks (run_id, chunk_name, sha256, row_count, inserted, updated) "
                    + "SELECT max(id), 'manual', repeat('b', 64), 0, 0, 0 FROM runs")
            let missed = try await refresh(f)
            #expect(missed.mode == "incremental" && missed.sensorDays == 0)
            #expect(try Self.differences(f.db) == 2)
            let forced = try await refresh(f, force: true)
            #expect(forced.mode == "full")
            #expect(try Self.differences(f.db) == 0)
        }
    }

    @Test func aRefreshWaitsForALoadStillWritingItsSensorDays() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(sensorsPerFloor: 2, minutes: 3 * 1440))
            _ = try await f.load()
            _ = try await refresh(f)
            // A load in progress on another connection touches an already recorded sensor-day: it holds it locked.
            let pair = try f.db.exec("SELECT sensor_id, date::text FROM daily_aggregates ORDER BY 1, 2 LIMIT 1").rows[0]
            try f.db.exec("INSERT INTO dirty_sensor_days VALUES ($1, $2::date)", parameters: [pair[0], pair[1]])
            let load = try f.target.connect()
            try load.exec("BEGIN")
            try ChunkLoader.markDirty(sensors: [pair[0]!], days: [pair[1]!], q: f.schema, on: load)
            try load.exec(
                "UPDATE sensor_readings SET reading_value = reading_value + 1 WHERE sensor_id = $1 "
                    + "AND (\"timestamp\" AT TIME ZONE 'Asia/Bangkok')::date = $2::date",
                parameters: [pair[0], pair[1]])
            // The refresh cannot take the pair before the load commits (here it gives up after 300 ms).
            let other = try f.target.connect()
            try other.exec("SET lock_timeout = '300ms'")
            let blocked = #expect(throws: PostgresError.self) {
                _ = try Schema(ledgerSchema: f.schema).refreshDailyAggregates(on: other)
            }
            #expect(blocked?.sqlState == "55P03")
            try load.exec("COMMIT")
            let after = try Schema(ledgerSchema: f.schema).refreshDailyAggregates(on: other)
            #expect(after.mode == "incremental" && after.sensorDays == 1)
            #expect(try Self.differences(f.db) == 0)

            // Two refreshes in one transaction each: the second waits for the first, then finds nothing to take.
            try f.db.exec("INSERT INTO dirty_sensor_days VALUES ($1, $2::date)", parameters: [pair[0], pair[1]])
            try other.exec("BEGIN")
            #expect(try Schema(ledgerSchema: f.schema).refreshDailyAggregates(on: other).sensorDays == 1)
            try load.exec("SET lock_timeout = '300ms'")
            let blockedAgain = #expect(throws: PostgresError.self) {
                _ = try Schema(ledgerSchema: f.schema).refreshDailyAggregates(on: load)
            }
            #expect(blockedAgain?.sqlState == "55P03")
            try other.exec("COMMIT")
            #expect(try Schema(ledgerSchema: f.schema).refreshDailyAggregates(on: load).sensorDays == 0)
            #expect(try Self.differences(f.db) == 0)
        }
    }

    @Test func setupTurnsTheMaterializedViewIntoATableKeepingRowsAndGrants() throws {
        try TestDatabase.withSchema { db, schema in
            try db.exec(Schema.createReadingsTableSQL)
            try db.exec(
                """
                INSERT INTO sensor_readings ("timestamp", sensor_id, floor_number, equipment_type, reading_value, unit)
                VALUES ('2019-01-01 00:30:00+07', 'f1_z1_light', 1, 'light', 1.5, 'kW'),
                       ('2019-01-02 00:10:00+07', 'f1_z1_light', 1, 'light', 4.0, 'kW')
                """)
            // The schema of an earlier bems: the materialized view, its key, a reader, the old refresh function.
            try db.exec(Schema.createLegacyAggregatesViewSQL(timeZoneLiteral: "'Asia/Bangkok'"))
            try db.exec(Schema.createAggregatesKeyIndexSQL)
            let reader = "bems_reader_" + schema
            try db.exec("CREATE ROLE \(reader)")
            defer { _ = try? db.exec("DROP OWNED BY \(reader); DROP ROLE \(reader)") }
            try db.exec("GRANT SELECT ON daily_aggregates TO \(reader)")
            try db.exec(
                """
                CREATE SCHEMA IF NOT EXISTS \(schema);
                CREATE FUNCTION \(schema).refresh_daily_aggregates(concurrent boolean) RETURNS void
                    LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
                GRANT EXECUTE ON FUNCTION \(schema).refresh_daily_aggregates(boolean) TO \(reader)
                """)
            let before = try db.exec("SELECT a::text FROM daily_aggregates a ORDER BY 1").rows
            try Schema(ledgerSchema: schema).setup(on: db)

            let kind = try db.exec("SELECT relkind::text FROM pg_class WHERE oid = 'daily_aggregates'::regclass")
            #expect(try kind.scalar() == "r")
            #expect(try db.exec("SELECT a::text FROM daily_aggregates a ORDER BY 1").rows == before)
            #expect(
                try db.exec("SELECT has_table_privilege($1, 'daily_aggregates', 'SELECT')", parameters: [reader])
                    .scalar() == "t")
            #expect(
                try db.exec(
                    "SELECT has_function_privilege($1, $2, 'EXECUTE')",
                    parameters: [reader, "\(schema).refresh_daily_aggregates(boolean)"]
                ).scalar() == "t")
            #expect(try db.exec("SELECT to_regclass('daily_aggregates_key') IS NOT NULL").scalar() == "t")
            try Schema(ledgerSchema: schema).verify(on: db)
            // Marked for a full recompute: loads since the view's last refresh recorded no sensor-days.
            #expect(try db.exec("SELECT count(*) FROM dirty_sensor_days WHERE day = '-infinity'").scalarInt64() == 1)
            let refreshed = try Schema(ledgerSchema: schema).refreshDailyAggregates(on: db)
            #expect(refreshed.isFull && refreshed.rowsInserted == 2)
            #expect(try Self.differences(db) == 0)
            // Setup again changes nothing and marks nothing.
            try Schema(ledgerSchema: schema).setup(on: db)
            #expect(try db.exec("SELECT count(*) FROM dirty_sensor_days").scalarInt64() == 0)
            // Another time zone is refused.
            let error = #expect(throws: SchemaError.self) {
                try Schema(timeZone: "UTC", ledgerSchema: schema).setup(on: db)
            }
            #expect(error?.description.contains("'UTC'") == true)
        }
    }
}
