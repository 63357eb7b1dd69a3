import Foundation
import Testing

@testable import BEMSCore

/// Progress as an operator sees it, from the built executables: log lines every few seconds when stderr is not a
/// terminal, a line redrawn in place on a terminal (a real pseudo-terminal from `script`), nothing with `--quiet`;
/// and the figures every run report gets from it: chunk timings of normalize, dedupe and load, and the load's
/// bandwidth against its rate limit with the `bandwidth` alert.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct ProgressTests {
    static let rowsPerSecond = 20_000

    /// Progress lines every half second; the load capped at ``rowsPerSecond`` so it lasts a few seconds.
    static func configure(_ h: PipelineHarness) throws {
        try AtomicFile.write(
            Array(
                """
                {"monitoring": {"progressSeconds": 0.5},
                 "environments": {"dev": {"rateLimit": {"rowsPerSecond": \(rowsPerSecond)}}}}
                """.utf8), to: h.config)
    }

    /// The load's command line at log level notice (progress lines are notices).
    static func load(_ h: PipelineHarness, _ extra: [String] = []) -> [String] {
        h.arguments(.load).map { $0 == "warning" ? "notice" : $0 } + extra
    }

    /// A fresh database and no load run: the next load starts from nothing.
    static func forgetLoad(_ h: PipelineHarness) throws {
        try h.resetSchema()
        try FileManager.default.removeItem(atPath: WorkDir(root: h.work).stageDirectory(.load))
    }

    static func report(_ h: PipelineHarness, _ stage: Stage) throws -> RunReport {
        let work = WorkDir(root: h.work)
        let id = try #require(work.currentRunID(stage))
        return try AtomicFile.readJSON(RunReport.self, from: work.runDirectory(stage, id) + "/" + RunReport.fileName)
    }

    @Test func logLinesOffATerminalALiveLineOnOneAndNothingWhenQuiet() async throws {
        try PipelineHarness.requireExecutables()
        try await ExclusiveLoadTests.shared.run {
            let h = try PipelineHarness(days: 1)
            defer { h.remove() }
            try Self.configure(h)
            for stage in [Stage.validate, .normalize, .dedupe] {
                let run = try h.run(stage)
                #expect(run.status == 0, "\(stage): \(run.stderr)")
            }
            let work = WorkDir(root: h.work)
            // Chunk timings of the file stages: one per normalize chunk, one per dedupe group.
            let normalize = try #require(try work.currentManifest(.normalize))
            #expect(try Self.report(h, .normalize).chunks?.count == normalize.chunks.count)
            let dedupe = try #require(try work.currentManifest(.dedupe))
            #expect(try Self.report(h, .dedupe).chunks?.count == dedupe.chunks.count)
            let readings = dedupe.chunks.reduce(0) { $0 + $1.rows }
            #expect(readings > 2 * Self.rowsPerSecond, "a load of a few seconds")

            // 1. stderr is a file: `load progress` lines, throttled while the rate limit holds the load back.
            let logged = try h.run(Self.load(h), label: "load")
            #expect(logged.status == 0, "\(logged.stderr)")
            let lines = logged.stderr.split(separator: "\n").filter { $0.contains("load progress") }
            #expect(lines.count >= 2, "\(logged.stderr)")
            #expect(lines.contains { $0.contains("throttled by the rate limits") })
            #expect(lines.allSatisfy { $0.contains("percent=") && $0.contains("rows.per.second=") })
            #expect(!logged.stderr.contains("\r"))
            let report = try Self.report(h, .load)
            let bandwidth = try #require(report.bandwidth)
            #expect(bandwidth.rowsPerSecondLimit == Double(Self.rowsPerSecond))
            #expect((bandwidth.rowsShare ?? 0) >= 0.8 && (bandwidth.rowsShare ?? 9) <= 1.2, "\(bandwidth)")
            #expect(report.alerts.contains { $0.kind == "bandwidth" })
            #expect(report.chunks?.count == dedupe.chunks.count)

            // 2. --quiet: no progress at all.
            try Self.forgetLoad(h)
            let quiet = try h.run(Self.load(h, ["--quiet"]), label: "load")
            #expect(quiet.status == 0, "\(quiet.stderr)")
            #expect(!quiet.stderr.contains("progress"))
            #expect(try Self.report(h, .load).bandwidth != nil)  // the figures are kept all the same

            // 3. A terminal (a pseudo-terminal from script(1)): one line redrawn in place, ended by a newline.
            try Self.forgetLoad(h)
            let output = h.root + "/terminal.out"
            let command = Self.load(h).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
            var environment = h.environment
            environment["TERM"] = "xterm"
            let child = try ChildProcess(
                ["/usr/bin/script", "-qefc", command.joined(separator: " "), "/dev/null"], environment: environment,
                output: output, errors: h.root + "/terminal.err")
            #expect(child.wait() == 0)
            let screen = try String(contentsOfFile: output, encoding: .utf8)
            let redraws = screen.components(separatedBy: "\rload ").count - 1
            #expect(redraws >= 4, "\(screen.debugDescription)")
            #expect(screen.contains("% ") && screen.contains("rows/s") && screen.contains("throttled"))
            #expect(screen.contains("100.0%"))
            #expect(!screen.contains("load progress"))
            #expect(try h.content().readings == readings)
        }
    }
}
