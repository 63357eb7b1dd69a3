import Foundation
import Testing

@testable import BEMSCore

/// The stage commands' monitoring as a user sees it: a failing run writes its report and metrics, reaches Sentry and
/// the webhook (local test servers), and `bems report` / `bems digest` read it back.
@Suite struct MonitoringCommandLineTests {
    typealias Outcome = CommandLineTests.Outcome

    /// Runs a built tool without the Sentry and webhook variables of this process (only the ones a test gives).
    func run(_ tool: String, _ arguments: [String], in directory: String, environment: [String: String] = [:]) throws
        -> Outcome
    {
        var env: [String: String?] = ["SENTRY_DSN": nil, "BEMS_ALERT_WEBHOOK_URL": nil]
        for (key, value) in environment { env[key] = value }
        return try CommandLineTests.run(tool, arguments, in: directory, environment: env)
    }

    @Test func aFailedValidateIsReportedEverywhere() throws {
        let sentry = try LocalHTTPServer()
        let hook = try LocalHTTPServer()
        defer { [sentry, hook].forEach { $0.stop() } }
        let dir = TemporaryDirectory()
        // Row 3 holds a bad number: 1 of 10 rows rejected, over the 0.1% threshold.
        dir.write("in/2019Floor2.csv", CSV.file(floor: 2, minutes: 10) { r, c in r == 3 && c == 1 ? "x1" : "0.5" })
        let env = [
            "SENTRY_DSN": "http://clikey@127.0.0.1:\(sentry.port)/3",
            "BEMS_ALERT_WEBHOOK_URL": hook.baseURL + "/hook/secrettoken",
        ]
        // A generous delivery timeout: the test machine may be busy.
        dir.write("pipeline.json", #"{"monitoring": {"timeoutSeconds": 30}}"#)
        let validate = try run("bems-validate", ["--work-dir", "w", "in"], in: dir.path, environment: env)
        #expect(validate.status == 65, "\(validate.stderr)")

        let work = WorkDir(root: dir.path + "/w")
        let runID = try #require(work.currentRunID(.validate))
        let report = try AtomicFile.readJSON(
            RunReport.self, from: work.runDirectory(.validate, runID) + "/" + RunReport.fileName)
        #expect(report.status == .failed && report.exitStatus == 65 && report.env == "dev")
        #expect(report.rowsIn == 10 && report.rowsRejected == 1 && report.errors == ["bad_number": 1])
        #expect(report.failure?.operation == "parse")
        #expect(report.alerts.map(\.kind) == ["import_failed", "error_rate"])
        let metrics = try ExpositionParser(
            try String(contentsOfFile: dir.path + "/w/metrics/bems_validate.prom", encoding: .utf8))
        #expect(metrics.sample("bems_run_exit_status", ["env": "dev", "stage": "validate"])?.value == 65)
        #expect(metrics.sample("bems_run_errors", ["code": "bad_number"])?.value == 1)

        let event = try #require(sentry.requests.first)
        #expect(
            event.path == "/api/3/envelope/" && event.headers["x-sentry-auth"]?.contains("sentry_key=clikey") == true)
        #expect(event.text.contains(#""stage":"validate""#) && event.text.contains(#""operation":"parse""#))
        #expect(event.text.contains(#""run_id":"\#(runID)""#) && event.text.contains(#""error_code":"data""#))
        let alert = try #require(hook.requests.first)
        #expect(alert.path == "/hook/secrettoken")
        #expect(alert.text.contains("CRITICAL [import_failed] validate (dev, run \(runID))"))
        #expect(alert.text.contains("WARNING [error_rate]"))
        #expect(!alert.text.contains("x1"))

        let table = try run("bems", ["report", "--work-dir", "w"], in: dir.path)
        #expect(table.status == 0)
        #expect(
            table.stdout.contains("validate") && table.stdout.contains("failed")
                && table.stdout.contains("bad_number=1"))
        let json = try run("bems", ["report", "--work-dir", "w", "--json", "--last", "1"], in: dir.path)
        let reports = try JSONDecoder().decode([RunReport].self, from: Data(json.stdout.utf8))
        #expect(reports == [report])

        let digest = try run("bems", ["digest", "--work-dir", "w", "--post"], in: dir.path, environment: env)
        #expect(digest.status == 0, "\(digest.stderr)")
        #expect(digest.stdout.contains("1 runs, 1 failed"))
        #expect(hook.requests.count == 2)
        #expect(hook.requests.last?.text.contains("bems digest (dev)") == true)
        let unposted = try run("bems", ["digest", "--work-dir", "w", "--post"], in: dir.path)
        #expect(unposted.status == 64 && unposted.stderr.contains("BEMS_ALERT_WEBHOOK_URL is not set"))
        let digestJSON = try run("bems", ["digest", "--work-dir", "w", "--json", "--hours", "1"], in: dir.path)
        #expect(try JSONDecoder().decode(RunDigest.self, from: Data(digestJSON.stdout.utf8)).failed == 1)
    }

    @Test func aStageThatThrowsGetsAFailureReportOutsideItsRuns() throws {
        let dir = TemporaryDirectory()
        dir.write("in/2019Floor2.csv", CSV.file(floor: 2, minutes: 3) { _, _ in "0.5" })
        // Not validated: normalize stops with 66 before it creates a run.
        let normalize = try run("bems-normalize", ["--work-dir", "w", "in"], in: dir.path)
        #expect(normalize.status == 66, "\(normalize.stderr)")
        let work = WorkDir(root: dir.path + "/w")
        #expect(work.runIDs(.normalize).isEmpty && work.currentRunID(.normalize) == nil)
        let id = try #require(work.failedRunIDs(.normalize).first)
        let report = try AtomicFile.readJSON(
            RunReport.self, from: work.failedRunDirectory(.normalize, id) + "/run-report.json")
        #expect(report.runID == id)
        #expect(RunHistory.reports(.normalize, work: work) == [report])
        #expect(report.failure?.code == "no_input" && report.failure?.operation == "input")
        #expect(report.alerts.first?.severity == .critical)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/w/metrics/bems_normalize.prom"))
    }

    @Test func anUnknownMonitoringKeyIsAUsageError() throws {
        let dir = TemporaryDirectory()
        dir.write("p.json", #"{"monitoring": {"sentry": "x"}}"#)
        let r = try run("bems-refresh", ["--config", "p.json", "--work-dir", "w"], in: dir.path)
        #expect(r.status == 64)
        #expect(r.stderr.contains("p.json: monitoring.sentry: unknown key"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/w"))
    }
}
