import Foundation

/// Something an operator should hear about: a failed import (critical) or a limit coming close (warning).
package struct Alert: Codable, Equatable, Sendable {
    package enum Severity: String, Codable, Sendable, Comparable {
        case warning, critical

        package static func < (a: Severity, b: Severity) -> Bool { a == .warning && b == .critical }
    }

    package var severity: Severity
    /// `import_failed`, `slow_chunk`, `time_budget`, `error_rate`, `storage`, `connections`, `bandwidth`.
    package var kind: String
    /// One line for people, without secrets or row values.
    package var message: String

    package init(_ severity: Severity, _ kind: String, _ message: String) {
        self.severity = severity
        self.kind = kind
        self.message = message
    }
}

/// The alert rules, applied to a finished run's report (README, Monitoring: Alerts).
package enum AlertRules {
    /// The alerts `report` raises under `thresholds`.
    ///
    /// - Critical: the run failed (any non-zero exit; an up-to-date run never does).
    /// - Warning: a chunk took longer than ``AlertThresholds/chunkSeconds``; the run took longer than its stage's
    ///   budget; the rejected share is over ``AlertThresholds/errorRate``; storage, connections or bandwidth (a
    ///   peak rate against the rate limits) reached ``AlertThresholds/limitShare`` of the environment's limit.
    package static func evaluate(_ report: RunReport, thresholds: AlertThresholds) -> [Alert] {
        var alerts: [Alert] = []
        let name = "\(report.stage.rawValue) (\(report.env), run \(report.runID))"
        if report.status == .failed {
            let why = report.failure.map { "\($0.operation): \($0.message)" } ?? "exit \(report.exitStatus)"
            alerts.append(
                Alert(.critical, "import_failed", "\(name) failed with exit status \(report.exitStatus): \(why)"))
        }
        if let chunks = report.chunks, chunks.maxSeconds > thresholds.chunkSeconds {
            alerts.append(
                Alert(
                    .warning, "slow_chunk",
                    "\(name): slowest chunk took \(format(chunks.maxSeconds)) s (over \(format(thresholds.chunkSeconds)) s;"
                        + " p95 \(format(chunks.p95Seconds)) s)"))
        }
        if let budget = thresholds.runSeconds[report.stage], report.seconds > budget {
            alerts.append(
                Alert(
                    .warning, "time_budget",
                    "\(name) took \(format(report.seconds)) s, over its time budget of \(format(budget)) s"))
        }
        if report.rowsRejected > 0, report.errorRate > thresholds.errorRate {
            alerts.append(
                Alert(
                    .warning, "error_rate",
                    "\(name): \(report.rowsRejected) of \(report.rowsIn) rows rejected "
                        + "(\(percent(report.errorRate)), over \(percent(thresholds.errorRate)))"))
        }
        if let storage = report.storage {
            alerts += storage.alerts(name: name, share: thresholds.limitShare)
        }
        if let bandwidth = report.bandwidth {
            alerts += bandwidth.alerts(name: name, share: thresholds.limitShare)
        }
        return alerts
    }

    /// `12.3` style seconds.
    static func format(_ seconds: Double) -> String { String(format: "%.1f", seconds) }

    /// `0.12%` style shares.
    static func percent(_ share: Double) -> String { String(format: "%.2f%%", share * 100) }
}
