import Foundation

extension WorkDir {
    /// The folder of a failed run's report, `<stage>/failed/<run>`: a run that failed before publishing a manifest
    /// leaves no folder in `runs/` (the stages remove it), so its report lives apart.
    package func failedRunDirectory(_ stage: Stage, _ runID: String) -> String {
        "\(stageDirectory(stage))/failed/\(runID)"
    }

    /// The ids of failed runs with a report, oldest first.
    package func failedRunIDs(_ stage: Stage) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stageDirectory(stage) + "/failed")) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Where the report of `report`'s run goes: its run folder when the run published a manifest there, else
    /// ``failedRunDirectory(_:_:)``.
    package func runReportPath(_ report: RunReport) -> String {
        let published = FileManager.default.fileExists(atPath: manifestPath(report.stage, report.runID))
        return (published ? runDirectory(report.stage, report.runID) : failedRunDirectory(report.stage, report.runID))
            + "/" + RunReport.fileName
    }

    /// A new run id in the format of ``createRun(_:now:)``, without creating a folder.
    package static func newRunID(now: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: now) + "-" + String(UInt32.random(in: 0...0xFFFF), radix: 16)
    }
}

/// The run reports in a work dir, for `bems report` and `bems digest`.
package enum RunHistory {
    /// The reports of `stage`, oldest first: each run folder's `run-report.json`, or one reconstructed from its
    /// manifest (``RunReport/fromManifest(_:work:)``), and the reports of failed runs (`<stage>/failed/`); run
    /// folders with neither (a run killed before publishing) are left out.
    package static func reports(_ stage: Stage, work: WorkDir) -> [RunReport] {
        let published: [RunReport] = work.runIDs(stage).compactMap { id in
            let dir = work.runDirectory(stage, id)
            if let r = try? AtomicFile.readJSON(RunReport.self, from: dir + "/" + RunReport.fileName) { return r }
            if let m = try? work.manifest(stage, id) { return RunReport.fromManifest(m, work: work) }
            return nil
        }
        let failed: [RunReport] = work.failedRunIDs(stage).compactMap { id in
            try? AtomicFile.readJSON(
                RunReport.self, from: work.failedRunDirectory(stage, id) + "/" + RunReport.fileName)
        }
        return (published + failed).sorted { $0.runID < $1.runID }
    }

    /// The last `last` reports of every stage, in pipeline order, oldest first within a stage.
    package static func latest(work: WorkDir, last: Int) -> [RunReport] {
        Stage.allCases.flatMap { reports($0, work: work).suffix(max(0, last)) }
    }

    /// Every report that finished at or after `since`, oldest first.
    package static func since(_ since: Date, work: WorkDir) -> [RunReport] {
        Stage.allCases.flatMap { reports($0, work: work) }
            .filter { (RunReport.date($0.finishedAt) ?? .distantPast) >= since }
            .sorted { $0.finishedAt < $1.finishedAt }
    }
}

/// The summary of a period's runs (`bems digest`, for a daily cron).
package struct RunDigest: Codable, Equatable, Sendable {
    /// One stage's runs in the period.
    package struct StageSummary: Codable, Equatable, Sendable {
        package var stage: Stage
        package var runs = 0
        package var failed = 0
        package var rowsOut = 0
        package var rowsRejected = 0
        package var seconds = 0.0
        package var retries = 0
        /// Slowest chunk of any run.
        package var maxChunkSeconds: Double?
        /// The latest run.
        package var lastRunID: String?
        package var lastStatus: RunReport.Status?
    }

    package var from: String
    package var to: String
    package var env: String
    package var stages: [StageSummary]
    /// Alerts the runs raised, oldest first.
    package var alerts: [Alert]

    /// Summarizes `reports` (those of the period).
    package init(reports: [RunReport], env: String, from: Date, to: Date) {
        self.from = RunReport.timestamp(from)
        self.to = RunReport.timestamp(to)
        self.env = env
        var byStage: [Stage: StageSummary] = [:]
        for r in reports {
            var s = byStage[r.stage] ?? StageSummary(stage: r.stage)
            s.runs += 1
            s.failed += r.status == .failed ? 1 : 0
            s.rowsOut += r.rowsOut
            s.rowsRejected += r.rowsRejected
            s.seconds += r.seconds
            s.retries += r.retries
            if let c = r.chunks { s.maxChunkSeconds = max(s.maxChunkSeconds ?? 0, c.maxSeconds) }
            s.lastRunID = r.runID
            s.lastStatus = r.status
            byStage[r.stage] = s
        }
        stages = Stage.allCases.compactMap { byStage[$0] }
        alerts = reports.flatMap(\.alerts)
    }

    /// Runs in the period.
    package var runs: Int { stages.reduce(0) { $0 + $1.runs } }
    /// Failed runs in the period.
    package var failed: Int { stages.reduce(0) { $0 + $1.failed } }

    /// The digest as text (also the webhook message).
    package var text: String {
        var lines = ["bems digest (\(env)), \(from) to \(to): \(runs) runs, \(failed) failed"]
        if stages.isEmpty { lines.append("no runs in this period") }
        for s in stages {
            var line =
                "- \(s.stage.rawValue): \(s.runs) runs (\(s.failed) failed), \(s.rowsOut) rows out, "
                + "\(s.rowsRejected) rejected, \(String(format: "%.1f", s.seconds)) s"
            if s.retries > 0 { line += ", \(s.retries) retries" }
            if let c = s.maxChunkSeconds { line += ", slowest chunk \(String(format: "%.1f", c)) s" }
            if let id = s.lastRunID, let st = s.lastStatus { line += "; last run \(id) \(st.rawValue)" }
            lines.append(line)
        }
        let critical = alerts.filter { $0.severity == .critical }.count
        let warnings = alerts.count - critical
        if !alerts.isEmpty { lines.append("alerts: \(critical) critical, \(warnings) warnings") }
        for a in alerts.suffix(10) { lines.append("  \(a.severity.rawValue): \(a.message)") }
        return lines.joined(separator: "\n")
    }
}

extension RunReport {
    /// The columns of `bems report`.
    package static let tableHeader = [
        "stage", "run", "env", "status", "exit", "finished", "seconds", "rows in", "rows out", "rejected", "bytes in",
        "retries", "chunk p50", "p95", "max", "errors", "alerts",
    ]

    /// This report as a row of `bems report`.
    package var tableRow: [String] {
        func s(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        let errors = self.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let critical = alerts.filter { $0.severity == .critical }.count
        return [
            stage.rawValue, runID, env, status.rawValue, "\(exitStatus)", finishedAt, String(format: "%.2f", seconds),
            "\(rowsIn)", "\(rowsOut)", "\(rowsRejected)", "\(bytesIn)", "\(retries)", s(chunks?.p50Seconds),
            s(chunks?.p95Seconds), s(chunks?.maxSeconds), errors.isEmpty ? "-" : errors,
            alerts.isEmpty ? "-" : "\(critical)c/\(alerts.count - critical)w",
        ]
    }
}
