import Foundation
import Logging
import Testing

@testable import BEMSCore

/// The least-privilege importer role (`bems setup --create-role`): every stage works as it, and it cannot drop or
/// truncate the application's tables or create roles.
@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(3)))
struct ImporterRoleTests {
    @Test func theImporterRunsEveryStageButCannotDropTruncateOrCreateRoles() async throws {
        try await TestDatabase.withSchemaAsync { _, schema in
            let f = try LoadFixture(db: try TestDatabase.connect(), schema: schema)
            let admin = try f.target.connect()
            _ = try DatabaseSetup.run(on: admin, timeZone: f.config.timeZone, ledgerSchema: schema, logger: f.logger)
            let role = "bems_imp_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            defer {
                _ = try? admin.exec("DROP OWNED BY \(role)")
                _ = try? admin.exec("DROP ROLE IF EXISTS \(role)")
            }
            let secret = "importer-pw-5d1e"
            let shown = try ImporterRole.create(
                role, password: secret, on: admin, timeZone: f.config.timeZone, ledgerSchema: schema, logger: f.logger)
            #expect(shown.contains { $0.contains("PASSWORD '*****'") })
            #expect(!shown.joined().contains(secret))
            #expect(shown.contains { $0.hasPrefix("GRANT SELECT, INSERT, UPDATE, DELETE ON \"\(schema)\".sensor_readings") })
            // Stored hashed (SCRAM), never as the clear text.
            let stored = try admin.exec("SELECT rolpassword FROM pg_authid WHERE rolname = $1", parameters: [role]).scalar()
            #expect(stored?.hasPrefix("SCRAM-SHA-256$") == true)
            // Idempotent.
            _ = try ImporterRole.create(
                role, password: nil, on: admin, timeZone: f.config.timeZone, ledgerSchema: schema, logger: f.logger)

            var importer = f.target
            importer.conninfo = ConnectionString.adding("user", role, to: f.target.conninfo)
            let db = try importer.connect()
            #expect(try db.exec("SELECT current_user").scalar() == role)
            #expect(db.parameterStatus("is_superuser") == "off")

            // dedupe (reads), load, verify, refresh, rollback: all as the importer.
            let day: Int64 = 1_551_632_400
            try StageFixture.publishNormalizeRun(
                work: f.work, sources: ["a.csv"],
                chunks: (0..<3).map { d in
                    StageFixture.Chunk(
                        floor: 1, day: TimestampParser.formatDay(17_959 + d), sourceIndex: 0,
                        rows: (0..<600).map { ("f1_z1_light", day + Int64(d) * 86_400 + Int64($0) * 60, Int64($0) * 3 + 1, .normal) })
                })
            var dedupe = DedupeStage.Options(config: f.config, env: "dev")
            dedupe.database = importer
            let deduped = try await DedupeStage.run(dedupe, logger: f.logger)
            #expect(deduped.report.inserts == 1800)
            var loadOptions = f.loadOptions()
            loadOptions.database = importer
            let loaded = try await LoadStage.run(loadOptions, logger: f.logger)
            #expect(loaded.inserted == 1800)
            #expect(loaded.verify?.passed == true)
            var refresh = RefreshStage.Options(config: f.config, env: "dev")
            refresh.database = importer
            refresh.ledgerSchema = schema
            let refreshed = try await RefreshStage.run(refresh, logger: f.logger)
            #expect(refreshed.report.aggregateRows == 3)
            var rollback = LoadRollback.Options(config: f.config, env: "dev", database: importer)
            rollback.ledgerSchema = schema
            _ = try LoadRollback.run(rollback, logger: f.logger)
            #expect(try admin.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == 0)

            // What it must not do.
            for sql in [
                "DROP TABLE sensor_readings", "TRUNCATE sensor_readings", "CREATE ROLE bems_sneaky",
                "DROP TABLE daily_aggregates", "TRUNCATE daily_aggregates",
                "DELETE FROM daily_aggregates", "INSERT INTO daily_aggregates (sensor_id) VALUES ('x')", "ALTER TABLE sensor_readings ADD COLUMN x int",
                "DROP INDEX sensor_readings_floor_number_timestamp_idx", "DROP TABLE \(schema).runs", "TRUNCATE \(schema).loaded_chunks",
                "CREATE TABLE \(schema).extra (a int)",
            ] {
                #expect {
                    try db.exec(sql)
                } throws: { error in
                    (error as? PostgresError)?.sqlState == "42501"
                }
            }
        }
    }

    @Test func anInvalidRoleNameOrMissingSchemaIsAClearError() throws {
        try TestDatabase.withSchema { db, schema in
            #expect(throws: PipelineError.self) {
                try ImporterRole.create(
                    "bad name; DROP", password: nil, on: db, timeZone: "Asia/Bangkok", ledgerSchema: schema,
                    logger: Logger(label: "t"))
            }
            #expect {
                try ImporterRole.create(
                    "bems_ok", password: nil, on: db, timeZone: "Asia/Bangkok", ledgerSchema: schema,
                    logger: Logger(label: "t"))
            } throws: { error in
                (error as? PipelineError)?.message.contains("run bems setup first") == true
            }
        }
    }
}
