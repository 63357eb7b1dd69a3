import BEMSServer
import Foundation
import Testing

@testable import BEMSCore

/// `GET /metrics` joins the server's own exposition and every stage's textfile: the result must still be one valid
/// exposition (one HELP and TYPE per family, its samples together), checked with the strict parser.
@Suite struct MetricsExpositionTests {
    /// The textfiles of a whole pipeline run, as the stage commands write them.
    func stageTextfiles() -> [String] {
        Stage.allCases.map { stage in
            var r = MonitoringFixture.report(stage)
            r.rowsIn = 100
            r.rowsOut = 90
            r.errors = ["field_count": 2]
            var seconds: [Double] = []
            if stage == .load {
                seconds = [0.2, 0.4, 12]
                r.chunks = ChunkTimings(seconds)
            }
            return RunMetrics.exposition(r, chunkSeconds: seconds)
        }
    }

    @Test func theServerAndEveryStageTextfileMergeIntoOneValidExposition() throws {
        let server = ServerMetrics()
        server.request(route: "/admin/import", method: "POST", status: 202)
        server.request(route: "/admin/import", method: "POST", status: 409)
        server.request(route: "/admin/import", method: "POST", status: 409)
        server.importStarted(env: "dev")
        let own = server.exposition(environments: ["dev", "prod", "staging"], running: "dev")
        let files = stageTextfiles()
        // Plain concatenation repeats every family's TYPE line: the strict parser refuses it.
        #expect(throws: ExpositionParser.Failure.self) { try ExpositionParser(files.joined()) }

        let merged = MetricsExposition.merge([own] + files)
        let p = try ExpositionParser(merged)
        for stage in Stage.allCases {
            #expect(p.sample("bems_run_success", ["stage": stage.rawValue])?.value == 1)
            #expect(p.sample("bems_run_rows_out", ["stage": stage.rawValue])?.value == 90)
            #expect(p.sample("bems_run_errors", ["stage": stage.rawValue, "code": "field_count"])?.value == 2)
        }
        #expect(p.family("bems_run_success")?.type == "gauge")
        #expect(p.family("bems_run_success")?.samples.count == 5)
        #expect(p.family("bems_chunk_duration_seconds")?.type == "histogram")
        #expect(p.sample("bems_chunk_duration_seconds_count", ["stage": "load"])?.value == 3)
        #expect(
            p.sample("bems_api_requests_total", ["route": "/admin/import", "method": "POST", "status": "409"])?.value
                == 2)
        #expect(p.sample("bems_api_imports_started_total", ["env": "dev"])?.value == 1)
        #expect(p.sample("bems_api_import_running", ["env": "dev"])?.value == 1)
        #expect(p.sample("bems_api_import_running", ["env": "prod"])?.value == 0)
        #expect(merged.components(separatedBy: "# TYPE bems_run_success ").count == 2)
    }

    @Test func conflictingTypesAndRepeatedSeriesAreLeftOutAndQuotedLabelsKept() throws {
        let first = """
            # HELP x_total Things.
            # TYPE x_total counter
            x_total{a="1 }",b="q\\"}"} 3
            # just a comment
            y 1

            """
        let second = """
            # TYPE x_total gauge
            x_total{a="2"} 4
            # TYPE y untyped
            y 2
            x_total{a="3"} 5
            not a sample line
            # HELP z Zed.
            # TYPE z gauge
            z{a="1"} 7 1700000000000

            """
        let merged = MetricsExposition.merge([first, second])
        let p = try ExpositionParser(merged)
        #expect(p.family("x_total")?.type == "counter")
        #expect(p.family("x_total")?.samples.count == 1)
        #expect(p.sample("x_total", ["a": "1 }", "b": "q\"}"])?.value == 3)
        #expect(p.sample("y")?.value == 1)
        #expect(p.sample("z", ["a": "1"])?.value == 7)
        #expect(p.family("z")?.help == "Zed.")
        #expect(!merged.contains("comment"))
        #expect(!merged.contains("not a sample"))
        #expect(merged.hasPrefix("# HELP x_total Things.\n# TYPE x_total counter\n"))
        #expect(MetricsExposition.merge([]) == "")
    }

    @Test func onlyFinishedTextfilesAreRead() throws {
        let dir = TemporaryDirectory()
        dir.write("bems_load.prom", Array("a 1\n".utf8))
        dir.write("bems_load.prom.1234", Array("partial".utf8))
        dir.write(".hidden.prom", Array("h 1\n".utf8))
        dir.write("notes.txt", Array("n 1\n".utf8))
        #expect(MetricsExposition.textfiles(in: dir.path) == ["a 1\n"])
        #expect(MetricsExposition.textfiles(in: dir.path + "/missing").isEmpty)
    }
}
