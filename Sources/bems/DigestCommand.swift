import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems digest [--hours H] [--post] [--json]`: a summary of the last day's runs, for a daily cron.
struct DigestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract:
            "Summarize the runs of the last 24 hours (runs, failures, rows, time, alerts); --post sends it to the webhook.",
        discussion: """
            Counts the run reports of --env whose run finished within --hours. With --post the text goes to the \
            alert webhook (the variable monitoring.alertWebhookEnv names, default BEMS_ALERT_WEBHOOK_URL). \
            Exit status: 0, 64 for a bad configuration or --post without a webhook, 69 when the webhook does not \
            accept the post.
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "The period in hours, ending now.")
    var hours = 24.0

    @Flag(help: "Post the digest to the alert webhook.")
    var post = false

    @Flag(help: "Print the digest as JSON on stdout.")
    var json = false

    func validate() throws {
        guard hours > 0 else { throw ValidationError("--hours must be positive") }
    }

    func run() async throws {
        try await runReportingErrors {
            let (config, _) = try common.prepare(stage: "digest")
            let now = Date()
            let from = now.addingTimeInterval(-hours * 3600)
            let reports = RunHistory.since(from, work: WorkDir(root: config.workDir)).filter { $0.env == common.env }
            let digest = RunDigest(reports: reports, env: common.env, from: from, to: now)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(digest), as: UTF8.self))
            } else {
                print(digest.text)
            }
            guard post else { return .ok }
            let monitor = RunMonitor(
                config: config, env: common.env,
                variables: (try? EnvironmentFile.merged(env: common.env)) ?? ProcessInfo.processInfo.environment)
            guard let url = monitor.webhookURL else {
                throw PipelineError.usage(
                    "--post: \(config.monitoring.alertWebhookEnv) is not set (in the environment or .env.\(common.env))"
                )
            }
            let text = SecretScrubber.scrub(digest.text, secrets: monitor.allSecrets, values: true)
            let outcome = await AlertWebhook.post(text, to: url, timeout: config.monitoring.timeoutSeconds)
            guard outcome.succeeded else {
                throw PipelineError(.unavailable, "the alert webhook did not accept the digest (\(outcome))")
            }
            printError("digest posted to the alert webhook")
            return .ok
        }
    }
}
