import Foundation

/// Alert delivery to a Slack-compatible incoming webhook: a JSON `{"text": …}` POST.
package enum AlertWebhook {
    /// The message for `alerts`: one line each, critical first, secrets and row values masked.
    package static func text(for alerts: [Alert], secrets: [String] = []) -> String {
        alerts.sorted { $0.severity > $1.severity }.map { a in
            let prefix = a.severity == .critical ? ":rotating_light: CRITICAL" : ":warning: WARNING"
            return SecretScrubber.scrub("\(prefix) [\(a.kind)] \(a.message)", secrets: secrets, values: true)
        }.joined(separator: "\n")
    }

    /// The JSON body `{"text": text}`.
    package static func payload(_ text: String) -> Data {
        (try? JSONSerialization.data(withJSONObject: ["text": text], options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    /// Posts `text` (best-effort, within `timeout` seconds).
    package static func post(_ text: String, to url: URL, timeout: Double) async -> HTTPDelivery.Outcome {
        await HTTPDelivery.send(
            url, headers: ["Content-Type": "application/json"], body: payload(text), timeout: timeout)
    }
}

/// Pushes a run's metrics to a Prometheus Pushgateway: `PUT <url>/metrics/job/bems/env/<env>/stage/<stage>`,
/// replacing that group's metrics.
package enum Pushgateway {
    /// The group URL of a stage run.
    package static func url(base: String, env: String, stage: Stage) -> URL? {
        var b = base
        while b.hasSuffix("/") { b.removeLast() }
        let env = env.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? env
        return URL(string: "\(b)/metrics/job/bems/env/\(env)/stage/\(stage.rawValue)")
    }

    /// Pushes the exposition `text` (best-effort, within `timeout` seconds).
    package static func push(_ text: String, to url: URL, timeout: Double) async -> HTTPDelivery.Outcome {
        await HTTPDelivery.send(
            url, method: "PUT", headers: ["Content-Type": "text/plain; version=0.0.4"], body: Data(text.utf8),
            timeout: timeout)
    }
}
