import Foundation
import Testing

@testable import BEMSCore

@Suite(.enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct VerifyTests {
    @Test func passesAfterALoadAndReportsATamperedRow() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            let result = try await f.load()
            #expect(result.verify?.passed == true)
            #expect(try f.verify().passed)

            try f.db.exec(
                """
                UPDATE sensor_readings SET reading_value = reading_value + 0.0001
                WHERE sensor_id = 'f2_z1_light' AND "timestamp" = to_timestamp(1546304400 + 600)
                """)
            let report = try f.verify()
            #expect(!report.passed)
            #expect(report.mismatches.count == 1)
            let m = try #require(report.mismatches.first)
            #expect(m.kind == "sensor-day")
            #expect(m.sensorID == "f2_z1_light")
            #expect(m.day == "2019-01-01")  // 01:10 UTC is 08:10 in Bangkok
            // The run is the whole table, so it was checked in one scan; the mismatch still names its chunk.
            #expect(m.chunk?.contains("f2-2019-01-01") == true)

            // A deleted row is reported too (count and sum), on another sensor.
            try f.db.exec(
                "DELETE FROM sensor_readings WHERE sensor_id = 'f1_z1_plug' AND \"timestamp\" = to_timestamp(1546304400)"
            )
            #expect(try f.verify().mismatches.count == 2)
            let saved = try AtomicFile.readJSON(
                VerifyReport.self, from: f.work.runDirectory(.load, result.manifest!.runID) + "/verify.json")
            #expect(saved.mismatches.count == 2)
        }
    }

    @Test func aFirstLoadVerifiesBesideItsIndexBuildsAndReportsWhatTheTableGotWrong() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            // The server changes one value on its way in: the chunk's statistics and the table disagree.
            _ = try DatabaseSetup.run(
                on: f.db, timeZone: Schema.defaultTimeZone, ledgerSchema: f.schema, logger: f.logger)
            try f.db.exec(
                """
                CREATE FUNCTION skew_one_reading() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.sensor_id = 'f2_z1_light' AND NEW."timestamp" = to_timestamp(1546304400 + 600) THEN
                        NEW.reading_value := NEW.reading_value + 0.0001;
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER skew_one_reading BEFORE INSERT ON sensor_readings
                    FOR EACH ROW EXECUTE FUNCTION skew_one_reading();
                """)
            let result = try await f.load()
            #expect(try f.secondaryIndexCount() == 1)  // a first load: indexes dropped and rebuilt
            #expect(result.exitStatus == .dataError)
            let m = try #require(result.verify?.mismatches.first)
            #expect(result.verify?.mismatches.count == 1)
            #expect(m.kind == "sensor-day" && m.sensorID == "f2_z1_light" && m.day == "2019-01-01")
            // Written once the run was published, as a later verify would.
            let manifest = try #require(result.manifest)
            #expect(try f.work.currentManifest(.load)?.runID == manifest.runID)
            let saved = try AtomicFile.readJSON(
                VerifyReport.self, from: f.work.runDirectory(.load, manifest.runID) + "/verify.json")
            #expect(saved == result.verify)
        }
    }

    @Test func aSmallLaterRunIsCheckedPerChunkAndReportsATamperedRow() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            _ = try await f.load()
            // 60 new minutes on top: a run far smaller than the table, checked by range reads per chunk.
            try f.publishDedupe(LoadFixture.readings(minutes: 1560).filter { $0.ts >= 1_546_304_400 + 1500 * 60 })
            let second = try await f.load()
            #expect(second.inserted == 6 * 60)
            #expect(second.verify?.passed == true)
            try f.db.exec(
                """
                UPDATE sensor_readings SET reading_value = reading_value - 0.0001
                WHERE sensor_id = 'f1_z1_ac1' AND "timestamp" = to_timestamp(1546304400 + 1530 * 60)
                """)
            let report = try f.verify()
            #expect(report.mismatches.count == 1)
            let m = try #require(report.mismatches.first)
            #expect(m.kind == "sensor-day" && m.sensorID == "f1_z1_ac1" && m.day == "2019-01-02")
            #expect(m.chunk?.contains("f1-2019-01-02") == true)
            // 2019-01-02 (Bangkok) begins at minute 960 of the readings: 600 of them that day.
            #expect(m.expected.hasPrefix("count=600 ") && m.actual.hasPrefix("count=600 "))
            #expect(report.sensorDaysChecked == 6)  // the run's sensors on its one Bangkok day
            // Every reading of a sensor-day gone: reported with a count of 0.
            try f.db.exec(
                """
                DELETE FROM sensor_readings WHERE sensor_id = 'f2_z1_light'
                AND "timestamp" >= to_timestamp(1546304400 + 960 * 60)
                """)
            let gone = try f.verify().mismatches.first { $0.sensorID == "f2_z1_light" }
            #expect(gone?.actual == "count=0 sum=0")
        }
    }

    @Test func comparesRefreshedAggregatesWithTheStatistics() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            _ = try await f.load()
            var refresh = RefreshStage.Options(config: f.config, env: "dev")
            refresh.database = f.target
            refresh.ledgerSchema = f.schema
            _ = try await RefreshStage.run(refresh, logger: f.logger)
            #expect(try f.verify().passed)
            // A wrong count in daily_aggregates (as a faulty refresh would leave it) is reported.
            try f.db.exec(
                "UPDATE daily_aggregates SET reading_count = reading_count + 1 "
                    + "WHERE sensor_id = 'f2_z1_light' AND date = '2019-01-01'")
            let report = try f.verify()
            #expect(report.mismatches.count == 1)
            let m = try #require(report.mismatches.first)
            #expect(m.kind == "aggregates" && m.sensorID == "f2_z1_light" && m.day == "2019-01-01")
            #expect(m.expected == "reading_count=960" && m.actual == "reading_count=961")
            // Not while its refresh is pending, nor while a full recompute is.
            try f.db.exec("INSERT INTO dirty_sensor_days VALUES ('f2_z1_light', '2019-01-01')")
            #expect(try f.verify().passed)
            try f.db.exec("DELETE FROM dirty_sensor_days")
            try Schema(ledgerSchema: f.schema).markAggregatesStale(on: f.db)
            #expect(try f.verify().passed)
        }
    }

    @Test func reportsAChunkMissingFromTheLedger() async throws {
        try await withLoadFixture { f in
            try f.publishDedupe(LoadFixture.readings(minutes: 100))
            _ = try await f.load()
            try f.db.exec("UPDATE loaded_chunks SET status = 'rolled_back', rolled_back_at = now()")
            let report = try f.verify()
            #expect(report.mismatches.contains { $0.kind == "chunk-missing" })
        }
    }

    @Test func theGroupedScanTakesTheDayAtTheZonesOffsetOnlyWhereTheZoneKeepsOneOffset() async throws {
        try await withLoadFixture { f in
            try f.db.exec("CREATE TEMP TABLE days (day date NOT NULL)")
            func zone(_ tz: String, _ days: [String]) throws -> String {
                try f.db.exec("DELETE FROM days")
                for day in days { try f.db.exec("INSERT INTO days VALUES ($1::date)", parameters: [day]) }
                return try VerifyStage.dayZone(tz: try f.db.quoteLiteral(tz), statsTable: "days", db: f.db)
            }
            #expect(try zone("Asia/Bangkok", ["2018-07-01", "2019-12-31"]) == "INTERVAL '25200 seconds'")
            #expect(try zone("America/New_York", ["2019-01-02", "2019-02-27"]) == "INTERVAL '-18000 seconds'")
            #expect(try zone("America/New_York", ["2019-07-01", "2019-07-02"]) == "INTERVAL '-14400 seconds'")
            // A range across a daylight-saving change, even one in its last hours, keeps the named zone.
            #expect(try zone("America/New_York", ["2019-01-02", "2019-07-01"]) == "'America/New_York'")
            #expect(try zone("America/New_York", ["2019-03-01", "2019-03-10"]) == "'America/New_York'")
            #expect(try zone("America/New_York", ["2019-03-01", "2019-03-09"]) == "INTERVAL '-18000 seconds'")
            #expect(try zone("Asia/Bangkok", []) == "'Asia/Bangkok'")
            // Bangkok moved from +06:42:04 (local mean time) to +07:00 on 1920-04-01.
            #expect(try zone("Asia/Bangkok", ["1920-03-01", "1920-04-30"]) == "'Asia/Bangkok'")

            // A first load's grouped scan takes the day at Bangkok's offset: readings either side of a Bangkok
            // midnight (the fixture spans two UTC days) land on the days the statistics give them.
            try f.publishDedupe(LoadFixture.readings(minutes: 1500))
            let result = try await f.load()
            #expect(result.verify?.passed == true)
        }
    }
}
