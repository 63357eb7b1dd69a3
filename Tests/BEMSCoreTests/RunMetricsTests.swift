import Foundation
import Testing

@testable import BEMSCore

@Suite struct RunMetricsTests {
    func loadReport() -> RunReport {
        var r = MonitoringFixture.report(.load)
        r.rowsIn = 1000
        r.rowsOut = 990
        r.rowsRejected = 0
        r.bytesIn = 4096
        r.retries = 2
        r.chunks = ChunkTimings([0.2, 0.4, 12])
        r.errors = ["sqlstate_40P01": 1, "unavailable": 2]
        r.alerts = [Alert(.warning, "slow_chunk", "x")]
        r.storage = StoragePreflight.evaluate(
            databaseBytes: 10 << 20, pendingReadings: 1000, bytesPerReading: 180, source: "calibrated default",
            limitMB: 500, warnShare: 0.8, force: false)
        r.storage?.databaseBytesAfter = 11 << 20
        r.storage?.readingsTableBytes = 1 << 20
        return r
    }

    @Test func expositionParsesStrictlyWithTheExpectedSeries() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let text = RunMetrics.exposition(loadReport(), chunkSeconds: [0.2, 0.4, 12], now: now)
        let p = try ExpositionParser(text)
        let labels = ["env": "staging", "stage": "load"]
        func value(_ name: String, _ extra: [String: String] = [:]) -> Double? {
            p.sample(name, labels.merging(extra) { $1 })?.value
        }
        #expect(value("bems_run_success") == 1)
        #expect(value("bems_run_exit_status") == 0)
        #expect(value("bems_run_up_to_date") == 0)
        #expect(value("bems_run_timestamp_seconds") == 1_800_000_000)
        #expect(value("bems_run_duration_seconds") == 3)
        #expect(value("bems_run_rows_in") == 1000)
        #expect(value("bems_run_rows_out") == 990)
        #expect(value("bems_run_rows_rejected") == 0)
        #expect(value("bems_run_bytes_in") == 4096)
        #expect(value("bems_run_retries") == 2)
        #expect(value("bems_run_chunks") == 3)
        #expect(value("bems_run_chunk_p50_seconds") == 0.4)
        #expect(value("bems_run_chunk_p95_seconds") == 12)
        #expect(value("bems_run_chunk_max_seconds") == 12)
        #expect(value("bems_run_errors", ["code": "unavailable"]) == 2)
        #expect(value("bems_run_errors", ["code": "sqlstate_40P01"]) == 1)
        #expect(value("bems_run_alerts", ["severity": "warning"]) == 1)
        #expect(value("bems_run_alerts", ["severity": "critical"]) == 0)
        #expect(value("bems_storage_database_bytes") == Double(11 << 20))
        #expect(value("bems_storage_limit_bytes") == Double(500 << 20))
        #expect(value("bems_storage_readings_table_bytes") == Double(1 << 20))
        #expect(value("bems_storage_estimated_bytes") == Double((10 << 20) + 180_000))
        let histogram = try #require(p.family("bems_chunk_duration_seconds"))
        #expect(histogram.type == "histogram")
        #expect(value("bems_chunk_duration_seconds_count") == 3)
        #expect(abs((value("bems_chunk_duration_seconds_sum") ?? 0) - 12.6) < 1e-9)
        #expect(value("bems_chunk_duration_seconds_bucket", ["le": "0.25"]) == 1)
        #expect(value("bems_chunk_duration_seconds_bucket", ["le": "10.0"]) == 2)
        #expect(value("bems_chunk_duration_seconds_bucket", ["le": "+Inf"]) == 3)
        // Every series is a bems_* name with env and stage labels, every family typed.
        for family in p.families {
            #expect(family.name.hasPrefix("bems_"))
            #expect(["gauge", "histogram"].contains(family.type))
            for s in family.samples { #expect(s.labels["env"] == "staging" && s.labels["stage"] == "load") }
        }
    }

    @Test func failedAndUpToDateRuns() throws {
        var failed = MonitoringFixture.report(.dedupe, status: .failed)
        failed.errors = ["unavailable": 1]
        let p = try ExpositionParser(RunMetrics.exposition(failed))
        #expect(p.sample("bems_run_success")?.value == 0)
        #expect(p.sample("bems_run_exit_status")?.value == 69)
        #expect(p.sample("bems_run_chunk_p50_seconds") == nil)
        #expect(p.family("bems_chunk_duration_seconds") == nil)
        #expect(p.family("bems_storage_database_bytes") == nil)
        let q = try ExpositionParser(RunMetrics.exposition(MonitoringFixture.report(.refresh), upToDate: true))
        #expect(q.sample("bems_run_up_to_date")?.value == 1)
        #expect(q.sample("bems_run_success", ["stage": "refresh"])?.value == 1)
    }

    @Test(arguments: [
        "bems_x 1\n", "# TYPE bems_x gauge\nbems_x{env=\"a\"} 1\n", "bems_x_bucket{le=\"+Inf\"} 2 1700000000\n",
        "# HELP bems_x a \\\\ help\n# TYPE bems_x counter\nbems_x 1e+16\nbems_x{a=\"q\\\"\\n\"} NaN\n",
    ])
    func theTestParserAcceptsValidText(text: String) throws {
        _ = try ExpositionParser(text)
    }

    @Test(arguments: [
        "bems_x 1", "bems-x 1\n", "bems_x{1a=\"b\"} 1\n", "bems_x{a=b} 1\n", "bems_x{a=\"b} 1\n", "bems_x one\n",
        "bems_x  1\n", "bems_x 1 12.5\n", "# TYPE bems_x gauge\n# TYPE bems_x gauge\n", "bems_x 1\nbems_x 2\n",
        "bems_x 1\nbems_y 1\nbems_x{a=\"b\"} 1\n", "bems_x 1\n# TYPE bems_x gauge\n", "# TYPE bems_x meter\n",
        "bems_x{a=\"b\",a=\"c\"} 1\n", "bems_x{a=\"\\t\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
    ])
    func theTestParserRejectsInvalidText(text: String) {
        #expect(throws: ExpositionParser.Failure.self) { try ExpositionParser(text) }
    }

    @Test func textfileIsRenamedIntoPlace() throws {
        let dir = TemporaryDirectory()
        let folder = dir.path + "/metrics/sub"
        let path = try RunMetrics.writeTextfile("bems_x 1\n", stage: .load, directory: folder)
        #expect(path == folder + "/bems_load.prom")
        try RunMetrics.writeTextfile("bems_x 2\n", stage: .load, directory: folder)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "bems_x 2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["bems_load.prom"])
        dir.write("file", "x")
        #expect(throws: PipelineError.self) {
            try RunMetrics.writeTextfile("bems_x 1\n", stage: .load, directory: dir.path + "/file")
        }
    }
}
