import Foundation
import Testing

@testable import BEMSCore

@Suite struct MonitoringConfigTests {
    func parse(_ json: String) throws -> PipelineConfig {
        try PipelineConfig.parse(Data(json.utf8), file: "p.json")
    }

    func failure(_ json: String) -> PipelineError? {
        do {
            _ = try parse(json)
            return nil
        } catch let e as PipelineError {
            return e
        } catch {
            return nil
        }
    }

    @Test func defaults() throws {
        let c = PipelineConfig()
        #expect(c.monitoring.metricsDirectory(workDir: "w") == "w/metrics")
        #expect(c.monitoring.pushgatewayURL == nil)
        #expect(c.monitoring.sentryDSNEnv == "SENTRY_DSN")
        #expect(c.monitoring.alertWebhookEnv == "BEMS_ALERT_WEBHOOK_URL")
        #expect(c.monitoring.timeoutSeconds == 2)
        #expect(c.monitoring.bytesPerReading == StoragePreflight.calibratedBytesPerReading)
        #expect(c.environments["dev"]!.storageLimitMB == nil)
        #expect(c.environments["staging"]!.storageLimitMB == 500)
        #expect(c.environments["prod"]!.storageLimitMB == 500)
        let a = c.environments["prod"]!.alerts
        #expect(a.chunkSeconds == 10 && a.errorRate == 0.001 && a.limitShare == 0.8 && a.runSeconds.isEmpty)
    }

    @Test func readsEveryMonitoringKey() throws {
        let c = try parse(
            """
            {"monitoring": {"metricsDirectory": "/var/lib/node_exporter", "pushgatewayURL": "http://127.0.0.1:9091",
              "sentryDSNEnv": "MY_DSN", "alertWebhookEnv": "SLACK_URL", "timeoutSeconds": 1.5, "bytesPerReading": 200},
             "environments": {"staging": {"storageLimitMB": 8192,
               "alerts": {"chunkSeconds": 5, "errorRate": 0.01, "limitShare": 0.9, "runSeconds": {"load": 3600}}},
              "dev": {"storageLimitMB": 0, "alerts": {"runSeconds": 60}}}}
            """)
        #expect(c.monitoring.metricsDirectory(workDir: "w") == "/var/lib/node_exporter")
        #expect(c.monitoring.pushgatewayURL == "http://127.0.0.1:9091")
        #expect(c.monitoring.sentryDSNEnv == "MY_DSN")
        #expect(c.monitoring.alertWebhookEnv == "SLACK_URL")
        #expect(c.monitoring.timeoutSeconds == 1.5)
        #expect(c.monitoring.bytesPerReading == 200)
        let s = c.environments["staging"]!
        #expect(s.storageLimitMB == 8192)
        #expect(s.alerts.chunkSeconds == 5 && s.alerts.errorRate == 0.01 && s.alerts.limitShare == 0.9)
        #expect(s.alerts.runSeconds == [.load: 3600])
        let d = c.environments["dev"]!
        #expect(d.storageLimitMB == nil)
        #expect(d.alerts.runSeconds.count == Stage.allCases.count && d.alerts.runSeconds[.validate] == 60)
    }

    @Test(arguments: [
        (#"{"monitoring": {"sentryDsnEnv": "X"}}"#, "monitoring.sentryDsnEnv: unknown key"),
        (#"{"monitoring": []}"#, "monitoring: expected an object"),
        (#"{"monitoring": {"pushgatewayURL": "ftp://host"}}"#, "monitoring.pushgatewayURL: expected an http"),
        (#"{"monitoring": {"pushgatewayURL": "not a url"}}"#, "monitoring.pushgatewayURL"),
        (#"{"monitoring": {"sentryDSNEnv": "1DSN"}}"#, "monitoring.sentryDSNEnv: expected an environment variable"),
        (#"{"monitoring": {"alertWebhookEnv": "A-B"}}"#, "monitoring.alertWebhookEnv"),
        (#"{"monitoring": {"timeoutSeconds": 0}}"#, "monitoring.timeoutSeconds: expected a number of seconds"),
        (#"{"monitoring": {"bytesPerReading": 1.5}}"#, "monitoring.bytesPerReading: expected an integer"),
        (#"{"environments": {"dev": {"storageLimitMB": -1}}}"#, "environments.dev.storageLimitMB"),
        (#"{"environments": {"dev": {"storageLimitMb": 5}}}"#, "environments.dev.storageLimitMb: unknown key"),
        (#"{"environments": {"dev": {"alerts": {"chunkSecs": 5}}}}"#, "environments.dev.alerts.chunkSecs: unknown key"),
        (#"{"environments": {"dev": {"alerts": {"errorRate": 2}}}}"#, "environments.dev.alerts.errorRate"),
        (#"{"environments": {"dev": {"alerts": {"limitShare": true}}}}"#, "environments.dev.alerts.limitShare"),
        (
            #"{"environments": {"dev": {"alerts": {"runSeconds": {"loader": 5}}}}}"#,
            "environments.dev.alerts.runSeconds.loader: unknown key"
        ),
        (#"{"environments": {"dev": {"alerts": {"runSeconds": "1h"}}}}"#, "environments.dev.alerts.runSeconds"),
    ])
    func refusesBadKeysNamingThePath(json: String, expected: String) throws {
        let e = try #require(failure(json))
        #expect(e.exitStatus == .usage)
        #expect(e.message.contains(expected), "\(e.message)")
    }
}
