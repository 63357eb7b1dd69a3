import Foundation

extension PipelineConfig {
    /// Where run reports and metrics go and how failures reach people (`monitoring` in pipeline.json).
    ///
    /// Secrets stay in the environment: the Sentry DSN and the webhook URL are read from the variables named here
    /// (process environment or `.env.<env>`), never from pipeline.json.
    package struct Monitoring: Sendable, Equatable {
        /// The node_exporter textfile-collector folder for `bems_<stage>.prom` (`nil`: `<workDir>/metrics`).
        package var metricsDirectory: String?
        /// A Prometheus Pushgateway base URL (`http://host:9091`); every run's metrics are PUT there when set.
        package var pushgatewayURL: String?
        /// The variable holding the Sentry DSN (the name every Sentry SDK reads by default).
        package var sentryDSNEnv = "SENTRY_DSN"
        /// The variable holding the alert webhook URL (Slack-compatible incoming webhook).
        package var alertWebhookEnv = "BEMS_ALERT_WEBHOOK_URL"
        /// Seconds each delivery (Sentry, webhook, Pushgateway) may take; delivery is best-effort.
        package var timeoutSeconds: Double = 2
        /// Bytes one reading costs in the database (table, indexes and `daily_aggregates`) when the target has too
        /// few readings to measure it (see ``StoragePreflight``).
        package var bytesPerReading: Int = StoragePreflight.calibratedBytesPerReading
        /// Seconds between two progress log lines when stderr is not a terminal.
        package var progressSeconds: Double = 5

        package init() {}

        /// The folder of the textfile-collector files.
        package func metricsDirectory(workDir: String) -> String { metricsDirectory ?? workDir + "/metrics" }
    }
}

/// The alert thresholds of one environment (`environments.<env>.alerts`).
package struct AlertThresholds: Sendable, Equatable {
    /// A chunk that took longer than this many seconds is a warning.
    package var chunkSeconds: Double = 10
    /// A rejected share (validate: rejected records / rows) above this is a warning.
    package var errorRate: Double = 0.001
    /// Storage, connections or bandwidth (the rate limits) at or above this share of the environment's limit is a warning (and the storage
    /// pre-flight's warning level).
    package var limitShare: Double = 0.8
    /// Time budget per stage run in seconds; a run over its budget is a warning. No budget by default.
    package var runSeconds: [Stage: Double] = [:]

    package init() {}
}

extension ConfigReader {
    /// `monitoring`: `metricsDirectory`, `pushgatewayURL`, `sentryDSNEnv`, `alertWebhookEnv`, `timeoutSeconds`,
    /// `bytesPerReading`, `progressSeconds`.
    func monitoring(_ value: Any, _ path: String) throws -> PipelineConfig.Monitoring {
        let o = try object(
            value, path,
            allowed: [
                "metricsDirectory", "pushgatewayURL", "sentryDSNEnv", "alertWebhookEnv", "timeoutSeconds",
                "bytesPerReading", "progressSeconds",
            ])
        var m = PipelineConfig.Monitoring()
        if let v = o["metricsDirectory"] { m.metricsDirectory = try string(v, path + ".metricsDirectory") }
        if let v = o["pushgatewayURL"] {
            let s = try string(v, path + ".pushgatewayURL")
            guard let url = URL(string: s), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                url.host != nil
            else {
                throw fail(path + ".pushgatewayURL", "expected an http:// or https:// URL")
            }
            m.pushgatewayURL = s
        }
        if let v = o["sentryDSNEnv"] { m.sentryDSNEnv = try variableName(v, path + ".sentryDSNEnv") }
        if let v = o["alertWebhookEnv"] { m.alertWebhookEnv = try variableName(v, path + ".alertWebhookEnv") }
        if let v = o["timeoutSeconds"] {
            m.timeoutSeconds = try seconds(v, path + ".timeoutSeconds", min: 0.1, max: 60)
        }
        if let v = o["bytesPerReading"] {
            m.bytesPerReading = try integer(v, path + ".bytesPerReading", min: 16, max: 100_000)
        }
        if let v = o["progressSeconds"] {
            m.progressSeconds = try seconds(v, path + ".progressSeconds", min: 0.5, max: 3600)
        }
        return m
    }

    /// An environment variable's name (letters, digits, `_`, not starting with a digit).
    func variableName(_ value: Any, _ path: String) throws -> String {
        let s = try string(value, path)
        let ok = s.utf8.enumerated().allSatisfy { i, b in
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 || (i > 0 && b >= 48 && b <= 57)
        }
        guard ok else { throw fail(path, "expected an environment variable name, found \"\(s)\"") }
        return s
    }

    /// `environments.<env>.storageLimitMB` and `environments.<env>.alerts`.
    func environmentMonitoring(_ e: [String: Any], _ path: String, into env: inout PipelineConfig.Environment) throws {
        if let v = e["storageLimitMB"] {
            let mb = try integer(v, path + ".storageLimitMB", min: 0, max: 1 << 30)
            env.storageLimitMB = mb == 0 ? nil : mb
        }
        guard let v = e["alerts"] else { return }
        let a = try object(v, path + ".alerts", allowed: ["chunkSeconds", "errorRate", "limitShare", "runSeconds"])
        if let x = a["chunkSeconds"] {
            env.alerts.chunkSeconds = try seconds(x, path + ".alerts.chunkSeconds", min: 0, max: 86_400)
        }
        if let x = a["errorRate"] { env.alerts.errorRate = try fraction(x, path + ".alerts.errorRate") }
        if let x = a["limitShare"] { env.alerts.limitShare = try fraction(x, path + ".alerts.limitShare") }
        if let x = a["runSeconds"] {
            let p = path + ".alerts.runSeconds"
            if x is NSNumber {
                let s = try seconds(x, p, min: 0, max: 7 * 86_400)
                env.alerts.runSeconds = Dictionary(uniqueKeysWithValues: Stage.allCases.map { ($0, s) })
            } else {
                let o = try object(x, p, allowed: Set(Stage.allCases.map(\.rawValue)))
                for (key, item) in o {
                    env.alerts.runSeconds[Stage(rawValue: key)!] = try seconds(
                        item, p + "." + key, min: 0, max: 7 * 86_400)
                }
            }
        }
    }
}
