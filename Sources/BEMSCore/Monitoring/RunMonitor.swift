import Foundation
import Logging

/// What a stage command does with a finished run (README, Monitoring): evaluates the alert rules, writes
/// `run-report.json` in the run folder (`<stage>/failed/<run>/` for a run that published no manifest) and
/// `bems_<stage>.prom` in the metrics folder, and delivers, best-effort and in
/// parallel: the metrics to the Pushgateway, the alerts to the webhook, a failure to Sentry. Nothing here throws or
/// changes the command's exit status.
package struct RunMonitor: Sendable {
    package var config: PipelineConfig
    package var env: String
    /// The process environment merged with `.env.<env>` (where the DSN and the webhook URL are read).
    package var variables: [String: String]
    /// Strings never to show (the database connection string and its password); the DSN, the webhook URL and the
    /// Pushgateway URL are added.
    package var secrets: [String]

    package init(config: PipelineConfig, env: String, variables: [String: String], secrets: [String] = []) {
        self.config = config
        self.env = env
        self.variables = variables
        self.secrets = secrets
    }

    /// The Sentry DSN from `monitoring.sentryDSNEnv`, or `nil` (nothing is sent).
    package var sentryDSN: SentryDSN? {
        variables[config.monitoring.sentryDSNEnv].flatMap { $0.isEmpty ? nil : SentryDSN($0) }
    }

    /// The webhook URL from `monitoring.alertWebhookEnv`, or `nil` (no alerts are posted).
    package var webhookURL: URL? {
        guard let s = variables[config.monitoring.alertWebhookEnv], !s.isEmpty, let url = URL(string: s),
            ["http", "https"].contains(url.scheme?.lowercased() ?? "")
        else { return nil }
        return url
    }

    /// Everything to mask in messages.
    package var allSecrets: [String] {
        var list = secrets
        for name in [config.monitoring.sentryDSNEnv, config.monitoring.alertWebhookEnv] {
            if let v = variables[name], !v.isEmpty { list.append(v) }
        }
        if let p = config.monitoring.pushgatewayURL { list.append(p) }
        return list
    }

    /// The thresholds of the environment.
    package var thresholds: AlertThresholds { config.environments[env]?.alerts ?? AlertThresholds() }

    /// What was written and delivered.
    package struct Deliveries: Sendable, Equatable {
        package var reportPath: String?
        package var metricsPath: String?
        package var pushgateway: HTTPDelivery.Outcome?
        package var webhook: HTTPDelivery.Outcome?
        package var sentry: HTTPDelivery.Outcome?
    }

    /// Publishes a finished run.
    ///
    /// - Parameters:
    ///   - report: The run's report; its ``RunReport/alerts`` are filled in.
    ///   - chunkSeconds: The chunk timings, for the metrics histogram.
    ///   - upToDate: Nothing ran: no report is written (the run folder has one), no warnings are raised again; a
    ///     failure (an up-to-date validate run that failed) still alerts.
    package func publish(
        _ report: inout RunReport, chunkSeconds: [Double] = [], upToDate: Bool = false, logger: Logger
    ) async -> Deliveries {
        var d = Deliveries()
        if let failure = report.failure {
            report.failure?.message = SecretScrubber.scrub(failure.message, secrets: allSecrets)
        }
        let alerts = AlertRules.evaluate(report, thresholds: thresholds)
        report.alerts = upToDate ? alerts.filter { $0.severity == .critical } : alerts
        let work = WorkDir(root: config.workDir)
        if !upToDate {
            let path = work.runReportPath(report)
            do {
                try AtomicFile.makeDirectory((path as NSString).deletingLastPathComponent)
                try AtomicFile.writeJSON(report, to: path)
                d.reportPath = path
            } catch {
                logger.warning("cannot write the run report", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        let text = RunMetrics.exposition(report, chunkSeconds: chunkSeconds, upToDate: upToDate)
        do {
            d.metricsPath = try RunMetrics.writeTextfile(
                text, stage: report.stage, directory: config.monitoring.metricsDirectory(workDir: config.workDir))
        } catch {
            logger.warning("cannot write the metrics file", metadata: ["error": "\(error)"])
        }

        let timeout = config.monitoring.timeoutSeconds
        let push = config.monitoring.pushgatewayURL.flatMap { Pushgateway.url(base: $0, env: env, stage: report.stage) }
        let hook = report.alerts.isEmpty ? nil : webhookURL
        let hookText = AlertWebhook.text(for: report.alerts, secrets: allSecrets)
        let dsn = report.status == .failed ? sentryDSN : nil
        let event = SentryEvent(report: report, secrets: allSecrets)
        async let pushed = Self.deliver(push) { await Pushgateway.push(text, to: $0, timeout: timeout) }
        async let posted = Self.deliver(hook) { await AlertWebhook.post(hookText, to: $0, timeout: timeout) }
        async let sent = Self.deliver(dsn) { await event.send(to: $0, timeout: timeout) }
        (d.pushgateway, d.webhook, d.sentry) = await (pushed, posted, sent)
        for (what, outcome) in [("Pushgateway", d.pushgateway), ("alert webhook", d.webhook), ("Sentry", d.sentry)] {
            if let outcome, !outcome.succeeded {
                logger.warning(
                    "monitoring delivery failed", metadata: ["to": "\(what)", "outcome": "\(outcome)"])
            }
        }
        return d
    }

    /// Runs `body` when there is a target.
    private static func deliver<Target: Sendable>(
        _ target: Target?, _ body: @Sendable (Target) async -> HTTPDelivery.Outcome
    ) async -> HTTPDelivery.Outcome? {
        guard let target else { return nil }
        return await body(target)
    }
}
