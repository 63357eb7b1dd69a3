import Foundation
import Testing

@testable import BEMSCore

@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct LoadStageTests {
    @Test func fullLoadMatchesTheSourceReadingsExactly() async throws {
        try await withLoadFixture { f in
            let readings = LoadFixture.readings(minutes: 1500)  // two UTC days, 2 floors, 3 sensors
            try f.publishDedupe(readings)
            // A timestamp BRIN an earlier bems created: the first load builds the current set, without it.
            _ = try DatabaseSetup.run(
                on: f.db, timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema, logger: f.logger)
            try f.db.exec("CREATE INDEX sensor_readings_timestamp_brin ON sensor_readings USING brin (\"timestamp\")")
            let result = try await f.load()
            #expect(result.inserted == readings.count)
            #expect(result.updated == 0)
            #expect(result.exitStatus == .ok)
            #expect(result.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == readings.count)
            #expect(try f.secondaryIndexCount() == 1)  // dropped for the first load, rebuilt after
            // Unix 1546304400 is 2019-01-01 01:00:00 UTC, whatever the session time zone.
            let first = try f.db.exec(
                """
                SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'
                FROM sensor_readings WHERE sensor_id = 'f1_z1_ac1' ORDER BY "timestamp" LIMIT 1
                """
            ).scalar()
            #expect(first == "2019-01-01 01:00:00+00")
            // Ledger: one committed row per chunk with the inserted ids.
            let chunks = try f.work.currentManifest(.dedupe)!.chunks
            #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE status = 'committed'") == chunks.count)
            #expect(
                try f.count(
                    """
                    SELECT count(*) FROM sensor_readings s
                    WHERE NOT EXISTS (SELECT 1 FROM loaded_chunks c WHERE s.id <@ c.inserted_ids)
                    """) == 0)
            let manifest = try #require(result.manifest)
            #expect(manifest.stage == .load)
            #expect(manifest.upstreamRunID == f.work.currentRunID(.dedupe))
            #expect(manifest.totals["inserted"] == readings.count)
            #expect(FileManager.default.fileExists(atPath: f.work.runDirectory(.load, manifest.runID) + "/verify.json"))
        }
    }

    @Test func rerunLoadsNothingAndOverlappingBatchInsertsAndUpdates() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 600))
            let first = try await f.load()
            #expect(first.inserted == 6 * 600)
            let again = try await f.load()
            #expect(again.upToDate)
            #expect(again.inserted == 0 && again.updated == 0)

            // Second batch: overlaps the last 200 minutes, 100 of them with changed values, plus 300 new minutes.
            var second = LoadFixture.readings(minutes: 900).filter { $0.ts >= 1_546_304_400 + 400 * 60 }
            for i in second.indices where (second[i].ts - 1_546_304_400) / 60 < 500 {
                second[i].value += 1
            }
            let before = f.model
            let dedupe = try f.publishDedupe(second)
            let updates = dedupe.chunks.reduce(0) { $0 + ($1.updates ?? 0) }
            let inserts = dedupe.chunks.reduce(0) { $0 + ($1.inserts ?? 0) }
            #expect(updates == 6 * 100)
            #expect(inserts == 6 * 300)
            let result = try await f.load()
            #expect(result.inserted == inserts)
            #expect(result.updated == updates)
            #expect(result.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(f.model.count == before.count + inserts)
            #expect(try f.count("SELECT count(*) FROM replaced_readings") == updates)
        }
    }

    @Test func corruptedChunkIsRefusedBeforeAnythingIsLoaded() async throws {
        try await withLoadFixture { f in
            let dedupe = try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            #expect(dedupe.chunks.count > 2)
            let victim = dedupe.chunks[dedupe.chunks.count - 1]
            let path = f.work.runDirectory(.dedupe, dedupe.runID) + "/" + victim.file
            var bytes = try ChunkFile.read(path)
            bytes[bytes.count / 2] ^= 0x01
            try ChunkFile.write(bytes, to: path)
            let error = await #expect(throws: PipelineError.self) { try await f.load() }
            #expect(error?.exitStatus == .ioError)
            #expect(error?.message.contains(victim.file) == true)
            let loaded =
                try f.db.exec("SELECT to_regclass('sensor_readings') IS NOT NULL").scalar() == "t"
                ? try f.count("SELECT count(*) FROM sensor_readings") : 0
            #expect(loaded == 0)
        }
    }

    @Test func databaseChangedSinceDedupeFailsTheChunkWith65() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 100))
            _ = try await f.load()
            var second = LoadFixture.readings(minutes: 100)
            for i in second.indices { second[i].value += 3 }
            try f.publishDedupe(second)
            // Someone edits one row after dedupe ran.
            try f.db.exec(
                "UPDATE sensor_readings SET reading_value = reading_value + 1 WHERE id = (SELECT min(id) FROM sensor_readings)"
            )
            let error = await #expect(throws: PipelineError.self) { try await f.load() }
            #expect(error?.exitStatus == .dataError)
            #expect(error?.message.contains("rerun bems-dedupe") == true)
        }
    }

    @Test func setupReportsCreatedThenExisting() async throws {
        try await withLoadFixture { f in
            let first = try DatabaseSetup.run(
                on: f.db, timeZone: "Asia/Bangkok", ledgerSchema: f.schema, logger: f.logger)
            #expect(first.objects.allSatisfy { $0.created })
            #expect(first.objects.contains { $0.name == "\(f.schema).sensor_day_stats" })
            let second = try DatabaseSetup.run(
                on: f.db, timeZone: "Asia/Bangkok", ledgerSchema: f.schema, logger: f.logger)
            #expect(second.objects.allSatisfy { !$0.created })
            #expect(second.lines.first == "exists  sensor_readings")
        }
    }

    @Test func firstLoadSuspendsTheUniqueKeyAndRebuildsItAfter() async throws {
        try await withLoadFixture { f in
            let readings = LoadFixture.readings(minutes: 1500)
            try f.publishDedupe(readings)
            let result = try await f.load()
            #expect(result.verify?.passed == true)
            #expect(try f.tableContent() == f.expectedContent())
            #expect(try f.uniqueKeyExists() && f.primaryKeyExists())
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 0)
            // Every row's id is in its chunk's ledger ranges, taken from the sequence before the COPY.
            #expect(
                try f.count(
                    """
                    SELECT count(*) FROM sensor_readings s
                    WHERE NOT EXISTS (SELECT 1 FROM loaded_chunks c WHERE s.id <@ c.inserted_ids)
                    """) == 0)
            #expect(
                try f.count("SELECT coalesce(sum(upper(r) - lower(r)), 0) FROM loaded_chunks, unnest(inserted_ids) r")
                    == readings.count)
            // A later load keeps it (the table is not empty), and a duplicate is refused by the key again.
            try f.db.exec(
                "INSERT INTO sensor_readings (\"timestamp\", sensor_id, floor_number) SELECT \"timestamp\", sensor_id,"
                    + " floor_number FROM sensor_readings LIMIT 1 ON CONFLICT DO NOTHING")
            #expect(try f.count("SELECT count(*) FROM sensor_readings") == readings.count)
        }
    }

    @Test func aSuspendedKeyIsRebuiltBySetupAndDuplicatesStopIt() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 600))
            _ = try await f.load()
            let schema = Schema(timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema)
            // As a first load killed after suspending the key: the record stays, verify names the reason.
            #expect(try schema.suspendKeys(on: f.db, runID: 42) == [.unique, .primary])
            #expect(try !f.uniqueKeyExists())
            let error = #expect(throws: SchemaError.self) { try schema.verify(on: f.db) }
            #expect(error?.description.contains("suspended by a first load (ledger run 42)") == true)
            // A duplicate written meanwhile outside bems: setup cannot rebuild the key, says why, keeps the record.
            try f.db.exec(
                "INSERT INTO sensor_readings (\"timestamp\", sensor_id, floor_number) SELECT \"timestamp\", sensor_id,"
                    + " floor_number FROM sensor_readings ORDER BY id LIMIT 1")
            let refused = #expect(throws: PipelineError.self) { try schema.setup(on: f.db) }
            #expect(refused?.exitStatus == .dataError)
            #expect(refused?.message.contains("duplicate (sensor_id, \"timestamp\") rows") == true)
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 2)  // one transaction
            // Once removed, setup rebuilds the key under its name and forgets the record.
            try f.db.exec("DELETE FROM sensor_readings WHERE id = (SELECT max(id) FROM sensor_readings)")
            try schema.setup(on: f.db)
            #expect(try f.uniqueKeyExists())
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 0)
            try schema.verify(on: f.db)
            // A key that is a bare unique index (created by the application) is not suspended.
            try f.db.exec("ALTER TABLE sensor_readings DROP CONSTRAINT sensor_readings_sensor_id_timestamp_key")
            try f.db.exec("CREATE UNIQUE INDEX app_key ON sensor_readings (sensor_id, \"timestamp\")")
            #expect(try schema.suspendKeys(on: f.db, runID: 43).isEmpty)
            #expect(try f.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'app_key'") == 1)
        }
    }

    @Test func thePrimaryKeyIsSuspendedWithTheUniqueKeyAndRebuiltBySetup() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 600))
            _ = try await f.load()
            let schema = Schema(timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema)
            func primaryKeys() throws -> Int {
                try f.count(
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass('sensor_readings') AND contype = 'p'"
                        + " AND conname = 'sensor_readings_pkey'")
            }
            // A ledger from an older bems: one suspended key per table. Suspending both migrates it.
            try f.db.exec("DROP TABLE \(Schema.suspendedKeysTable)")
            try f.db.exec(
                """
                CREATE TABLE \(Schema.suspendedKeysTable) (table_oid OID PRIMARY KEY, constraint_name TEXT NOT NULL,
                    definition TEXT NOT NULL, run_id BIGINT, suspended_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """)
            #expect(try schema.suspendKeys(on: f.db, runID: 44) == [.unique, .primary])
            #expect(try primaryKeys() == 0 && !f.uniqueKeyExists())
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable) WHERE run_id = 44") == 2)
            // An id written twice meanwhile outside bems: setup says which key and why, and keeps both records.
            try f.db.exec(
                "INSERT INTO sensor_readings (id, \"timestamp\", sensor_id, floor_number) SELECT id, \"timestamp\","
                    + " 'elsewhere', floor_number FROM sensor_readings ORDER BY id LIMIT 1")
            let refused = #expect(throws: PipelineError.self) { try schema.setup(on: f.db) }
            #expect(refused?.exitStatus == .dataError)
            #expect(refused?.message.contains("duplicate (id) rows") == true)
            #expect(refused?.message.contains("sensor_readings_pkey") == true)
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 2)
            try f.db.exec("DELETE FROM sensor_readings WHERE sensor_id = 'elsewhere'")
            try schema.setup(on: f.db)
            #expect(try primaryKeys() == 1 && f.uniqueKeyExists())
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 0)
            // Prebuilt as bare unique indexes (as the load builds them), setup attaches both.
            #expect(try schema.suspendKeys(on: f.db, runID: 45).count == 2)
            for sql in try schema.suspendedKeyIndexSQL(on: f.db).values { try f.db.exec(sql) }
            try schema.setup(on: f.db)
            #expect(try primaryKeys() == 1 && f.uniqueKeyExists())
            // Already back (rebuilt by hand): setup only forgets the records.
            #expect(try schema.suspendKeys(on: f.db, runID: 46).count == 2)
            try f.db.exec("ALTER TABLE sensor_readings ADD PRIMARY KEY (id), ADD UNIQUE (sensor_id, \"timestamp\")")
            try schema.setup(on: f.db)
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 0)
            #expect(try f.count("SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass('sensor_readings')") == 2)
            // A foreign key refers to the table: the primary key stays, the unique key is still suspended.
            try f.db.exec("CREATE TABLE refers (reading BIGINT REFERENCES sensor_readings (id))")
            #expect(try schema.suspendKeys(on: f.db, runID: 47) == [.unique])
            #expect(try primaryKeys() == 1)
            try schema.setup(on: f.db)
            #expect(try f.uniqueKeyExists())
        }
    }

    @Test func idBlockIsReservedWholeAndOthersContinueAfterIt() async throws {
        try await withLoadFixture { f in
            let schema = Schema(timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema)
            try schema.setup(on: f.db)
            // A sequence never called: the block starts at its start value.
            #expect(try IDBlock.reserve(count: 1000, on: f.db) == 1)
            let other = try TestDatabase.connect()
            try other.exec("SET search_path TO \(f.schema)")
            let nextval = "SELECT nextval(pg_get_serial_sequence('sensor_readings', 'id'))"
            #expect(try other.exec(nextval).scalar() == "1002")
            // A called sequence: the block starts after its last value; the increment is back to 1.
            #expect(try IDBlock.reserve(count: 10, on: f.db) == 1003)
            #expect(try other.exec(nextval).scalar() == "1013")
            #expect(try IDBlock.reserve(count: 0, on: f.db) == nil)
            // A first load takes its ids from one block: one range per chunk, in chunk order.
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            let result = try await f.load()
            #expect(result.verify?.passed == true)
            #expect(try f.count("SELECT count(*) FROM loaded_chunks WHERE inserted_ids::text LIKE '%),[%'") == 0)
            #expect(try f.count("SELECT min(id) FROM sensor_readings") == 1014)
        }
    }

    @Test func indexesAreBuiltOnTwoSessionsAndTheKeyAttachedAgain() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 600))
            _ = try await f.load()
            let schema = Schema(timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema)
            try f.db.exec("DROP INDEX sensor_readings_floor_number_timestamp_idx")
            #expect(try schema.suspendKeys(on: f.db, runID: 7) == [.unique, .primary])
            // A duplicate written outside bems: the build stops with 65 and keeps the record.
            try f.db.exec(
                "INSERT INTO sensor_readings (\"timestamp\", sensor_id, floor_number) SELECT \"timestamp\", sensor_id,"
                    + " floor_number FROM sensor_readings ORDER BY id LIMIT 1")
            let refused = #expect(throws: PipelineError.self) {
                try LoadStage.buildIndexes(schema: schema, db: f.db, database: f.target, logger: f.logger)
            }
            #expect(refused?.exitStatus == .dataError)
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 2)
            try f.db.exec("DELETE FROM sensor_readings WHERE id = (SELECT max(id) FROM sensor_readings)")
            // What runs after the key, on its session: the key is there, with the stage's parallel workers.
            nonisolated(unsafe) var seen: [String?] = []
            try LoadStage.buildIndexes(
                schema: schema, db: f.db, database: f.target, workers: 3, logger: f.logger,
                afterKey: { session in
                    seen = [
                        try session.exec("SHOW max_parallel_maintenance_workers").scalar(),
                        try session.exec("SHOW max_parallel_workers_per_gather").scalar(),
                        try session.exec(
                            "SELECT count(*) FROM pg_indexes WHERE indexname = 'sensor_readings_sensor_id_timestamp_key'"
                                + " AND schemaname = current_schema()"
                        ).scalar(),
                    ]
                    // Autovacuum's lock is refused meanwhile (it skips the table); a reader is not.
                    let other = try f.target.connect(logger: f.logger)
                    let refused = #expect(throws: PostgresError.self) {
                        try other.transaction {
                            try other.exec("LOCK TABLE sensor_readings IN SHARE UPDATE EXCLUSIVE MODE NOWAIT")
                        }
                    }
                    seen.append(refused?.sqlState)
                    seen.append(try other.exec("SELECT count(*) > 0 FROM sensor_readings").scalar())
                })
            #expect(seen == ["3", "3", "1", "55P03", "t"])
            // Released afterwards.
            try f.db.transaction { try f.db.exec("LOCK TABLE sensor_readings IN SHARE UPDATE EXCLUSIVE MODE NOWAIT") }
            // Reset afterwards: the stage's session goes on with the server's settings.
            #expect(try f.db.exec("SHOW max_parallel_maintenance_workers").scalar() != "3")
            #expect(try f.db.exec("SHOW max_parallel_workers_per_gather").scalar() != "3")
            #expect(try f.db.exec("SELECT to_regclass('sensor_readings_floor_number_timestamp_idx') IS NOT NULL").scalar() == "t")
            // The primary key's index, built on the second session, for setup to attach.
            #expect(
                try f.count(
                    "SELECT count(*) FROM pg_indexes WHERE indexname = 'sensor_readings_pkey' AND schemaname = current_schema()"
                ) == 1)
            // A failure after the key (verify's) is the build's failure.
            struct Lost: Error {}
            #expect(throws: Lost.self) {
                try LoadStage.buildIndexes(
                    schema: schema, db: f.db, database: f.target, logger: f.logger, afterKey: { _ in throw Lost() })
            }
            #expect(try !f.uniqueKeyExists())  // a bare index until setup attaches it
            try schema.setup(on: f.db)
            #expect(try f.uniqueKeyExists())
            #expect(try f.count("SELECT count(*) FROM \(Schema.suspendedKeysTable)") == 0)
            #expect(
                try f.count(
                    "SELECT count(*) FROM pg_indexes WHERE tablename = 'sensor_readings' AND schemaname = current_schema()"
                ) == 3)
        }
    }
}
