import Foundation
import Testing

@testable import BEMSCore

@Suite(
    .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason),
    .timeLimit(.minutes(3))
)
struct RefreshStageTests {
    func options(_ dir: StageTempDirectory, schema: String, timeZone: String? = nil) throws -> RefreshStage.Options {
        var options = RefreshStage.Options(config: StageFixture.config(dir.path), env: "dev")
        options.environment = [
            "BEMS_DEV_DATABASE_URL": try StageFixture.conninfo(schema: schema, timeZone: timeZone)
        ]
        options.ledgerSchema = schema
        return options
    }

    /// Readings around Bangkok midnight: 16:59 and 17:00 UTC fall on different Bangkok days but the same day in
    /// New York (and in UTC).
    static func readings() -> [(String, Int64, Int64?, ReadingStatus)] {
        let utc17 = Int64(1_551_718_800)  // 2019-03-04 17:00:00 UTC = 2019-03-05 00:00 Bangkok
        var rows: [(String, Int64, Int64?, ReadingStatus)] = []
        for k in 0..<5 {
            rows.append(("f1_z1_light", utc17 - 60 * Int64(k + 1), 12_345 * Int64(k + 1), .normal))
            rows.append(("f1_z1_light", utc17 + 60 * Int64(k), 1 + Int64(k), .normal))
            rows.append(("f3_z2_ac1", utc17 + 3_600 * Int64(k) - 7_200, -3 * Int64(k), .anomaly))
        }
        return rows
    }

    /// The aggregates computed in Swift: Bangkok is UTC+7 all year (no DST), so its day is floor((t + 25200) / 86400).
    static func expected(_ rows: [(String, Int64, Int64?, ReadingStatus)]) -> [String] {
        var groups: [String: (count: Int, sum: Int64, min: Int64, max: Int64)] = [:]
        for (id, t, v, _) in rows {
            let days = (t + 25_200) / 86_400
            let key = "\(JSONText.isoUTC(days * 86_400).prefix(10))|\(id)"
            let value = v ?? 0
            var g = groups[key] ?? (0, 0, .max, .min)
            g.count += 1
            g.sum += value
            g.min = min(g.min, value)
            g.max = max(g.max, value)
            groups[key] = g
        }
        return groups.keys.sorted().map { key in
            let g = groups[key]!
            let (floor, type) = SensorColumn.describe(sensorID: String(key.split(separator: "|")[1]))!
            return "\(key)|\(floor)|\(type.rawValue)|\(g.count)|\(ScaledDecimal.format(g.sum))|"
                + "\(ScaledDecimal.format(g.min))|\(ScaledDecimal.format(g.max))"
        }
    }

    static func aggregates(_ db: PGConnection) throws -> [String] {
        try db.exec(
            """
            SELECT date::text || '|' || sensor_id || '|' || floor_number || '|' || equipment_type || '|' || reading_count
                   || '|' || round(avg_value * reading_count, 4)::text || '|' || min_value::text || '|' || max_value::text
            FROM daily_aggregates ORDER BY date, sensor_id
            """
        ).rows.map { $0[0] ?? "" }
    }

    /// What a load records in the ledger: a committed chunk, and the sensor-days it touched (for the incremental
    /// refresh).
    static func recordLoad(
        _ db: PGConnection, ledger: String, name: String, sensorDays: [(String, String)] = []
    ) throws {
        for (sensor, day) in sensorDays {
            try db.exec(
                "INSERT INTO \(ledger).dirty_sensor_days VALUES ($1, $2::date) ON CONFLICT DO NOTHING",
                parameters: [sensor, day])
        }
        let run = try db.exec(
            "INSERT INTO \(ledger).runs (stage, env, status) VALUES ('load', 'dev', 'succeeded') RETURNING id::text"
        ).scalar()!
        try db.exec(
            """
            INSERT INTO \(ledger).loaded_chunks (run_id, chunk_name, sha256, row_count, inserted, updated)
            VALUES ($1::bigint, $2, repeat('a', 64), 1, 1, 0)
            """, parameters: [run, name])
    }

    @Test func aggregatesAreBangkokDaysWhateverTheSessionTimeZone() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            let rows = Self.readings()
            try StageFixture.copyReadings(rows, into: db)
            // The first refresh after setup recomputes the whole table (the readings were not loaded by bems).
            let result = try await RefreshStage.run(
                try options(dir, schema: schema, timeZone: "America/New_York"), logger: StageFixture.logger)
            #expect(!result.upToDate)
            #expect(result.report.mode == "full")
            let actual = try Self.aggregates(db)
            #expect(actual == Self.expected(rows))
            // The same from an independent SQL computation (UTC + 7 hours), in a session whose TimeZone is not
            // Bangkok: the view's days do not depend on the session.
            try db.exec("SET TimeZone = 'America/New_York'")
            let independent = try db.exec(
                """
                SELECT d::text || '|' || sensor_id || '|' || floor_number || '|' || equipment_type || '|' || count(*)
                       || '|' || sum(reading_value)::text || '|' || min(reading_value)::text || '|'
                       || max(reading_value)::text
                FROM (SELECT (("timestamp" AT TIME ZONE 'UTC') + interval '7 hours')::date AS d, * FROM sensor_readings) r
                GROUP BY d, sensor_id, floor_number, equipment_type ORDER BY d, sensor_id
                """
            ).rows.map { $0[0] ?? "" }
            #expect(try Self.aggregates(db) == independent)
            let sessionDays = try db.exec(
                "SELECT count(DISTINCT (\"timestamp\")::date || sensor_id) FROM sensor_readings"
            ).scalarInt64()
            #expect(sessionDays == 2, "in New York the readings fall on one day per sensor")
            #expect(actual.count == 4)  // light on two Bangkok days, ac on two
            #expect(result.report.aggregateRows == actual.count)
            #expect(result.report.refreshSeconds >= 0 && result.report.analyzeSeconds >= 0)

            // The ledger has the refresh, and the work dir a refresh manifest for `bems status`.
            let ledger = try db.exec(
                "SELECT status, finished_at IS NOT NULL FROM \(schema).runs WHERE stage = 'refresh'"
            ).rows
            #expect(ledger.map { [$0[0], $0[1]] } == [["succeeded", "t"]])
            let manifest = try #require(try WorkDir(root: dir.path + "/work").currentManifest(.refresh))
            #expect(manifest.stage == .refresh && manifest.totals["aggregateRows"] == 4)

            // Planner statistics exist after ANALYZE.
            let analyzed = try db.exec(
                "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = $1 AND last_analyze IS NOT NULL"
                    + " AND relname = 'sensor_readings'",
                parameters: [schema]
            ).scalarInt64()
            #expect(analyzed == 1)
        }
    }

    @Test func secondRefreshWithoutALoadIsSkipped() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            try StageFixture.copyReadings(Self.readings(), into: db)
            var opts = try options(dir, schema: schema)
            let first = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!first.upToDate && first.report.mode == "full")
            #expect(try Self.aggregates(db).count == 4)

            let second = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(second.upToDate)
            #expect(second.manifest?.runID == first.manifest?.runID)

            // A load recorded in the ledger makes the next refresh run, and picks up the new rows.
            try StageFixture.copyReadings([("f7_z1_plug", 1_551_718_800, 5, .normal)], into: db)
            try Self.recordLoad(
                db, ledger: schema, name: "f7-2019-03-05.bemc", sensorDays: [("f7_z1_plug", "2019-03-05")])
            let third = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!third.upToDate)
            #expect(third.report.mode == "incremental" && third.report.sensorDays == 1)
            #expect(third.report.rowsDeleted == 0 && third.report.rowsInserted == 1)
            #expect(try Self.aggregates(db).count == 5)

            // A rollback (rolled_back_at set) counts as a change too.
            let unchanged = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(unchanged.upToDate)
            try db.exec("UPDATE \(schema).loaded_chunks SET status = 'rolled_back', rolled_back_at = now()")
            let afterRollback = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!afterRollback.upToDate)

            // --force refreshes anyway.
            opts.force = true
            let forced = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!forced.upToDate)
            let count = try db.exec(
                "SELECT count(*) FROM \(schema).runs WHERE stage = 'refresh' AND status = 'succeeded'"
            ).scalarInt64()
            #expect(count == 4)
        }
    }

    @Test func refreshWhoseManifestWasNotPublishedRunsAgain() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            try Schema(ledgerSchema: schema).setup(on: db)
            try StageFixture.copyReadings(Self.readings(), into: db)
            let opts = try options(dir, schema: schema)
            let first = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!first.upToDate)
            // As if killed after the ledger said succeeded but before the manifest was published.
            let work = WorkDir(root: dir.path + "/work")
            try work.setCurrent(.refresh, nil)
            let second = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(!second.upToDate)
            let current = try #require(try work.currentManifest(.refresh))
            #expect(current.runID == second.manifest?.runID)
            #expect(current.totals["ledgerRunID"] == second.report.ledgerRunID)
            let third = try await RefreshStage.run(opts, logger: StageFixture.logger)
            #expect(third.upToDate)
        }
    }

    @Test func missingSchemaIsReportedNotCreated() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { _, schema in
            let error = await #expect(throws: PipelineError.self) {
                try await RefreshStage.run(try options(dir, schema: schema), logger: StageFixture.logger)
            }
            #expect(error?.exitStatus == .noInput)
            #expect(error?.message.contains("daily_aggregates") == true)
        }
    }
}
