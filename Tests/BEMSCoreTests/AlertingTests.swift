import Foundation
import Logging
import Testing

@testable import BEMSCore

@Suite struct SentryTests {
    @Test(
        arguments: [
            ("https://abc123@o9.ingest.sentry.io/42", "https://o9.ingest.sentry.io/api/42/envelope/", "abc123", nil),
            ("http://k@127.0.0.1:9000/7", "http://127.0.0.1:9000/api/7/envelope/", "k", nil),
            (
                "https://pub:sec@sentry.example.com/prefix/path/99",
                "https://sentry.example.com/prefix/path/api/99/envelope/", "pub", "sec"
            ),
        ] as [(String, String, String, String?)])
    func dsnImpliesTheEnvelopeEndpoint(dsn: String, endpoint: String, key: String, secret: String?) throws {
        let d = try #require(SentryDSN(dsn))
        #expect(d.envelopeURL.absoluteString == endpoint)
        #expect(d.storeURL.absoluteString == endpoint.replacingOccurrences(of: "/envelope/", with: "/store/"))
        #expect(d.publicKey == key && d.secretKey == secret)
        #expect(d.authHeader.hasPrefix("Sentry sentry_version=7, sentry_client=bems/"))
        #expect(d.authHeader.contains("sentry_key=\(key)"))
    }

    @Test(arguments: ["", "not a dsn", "ftp://k@host/1", "https://host/1", "https://k@host/", "https://k@/1"])
    func refusesWhatIsNotADSN(dsn: String) {
        #expect(SentryDSN(dsn) == nil)
    }

    func failedLoad() -> RunReport {
        var r = MonitoringFixture.report(.load, status: .failed, runID: "20260101T000000Z-beef")
        r.rowsIn = 500
        r.failure = Failure(
            code: "data", operation: "copy", sqlState: "23505",
            message:
                #"chunk f1.bemc: unique violation (detail: Key (sensor_id, "timestamp")=(f1_z1_ac1, 2019-03-04) "#
                + "already exists) via postgresql://importer:hunter22@db.example/app")
        return r
    }

    @Test func eventCarriesTagsAndFingerprintButNoSecretOrValue() throws {
        let event = SentryEvent(report: failedLoad(), eventID: "0123456789abcdef0123456789abcdef")
        #expect(event.tags["stage"] == "load" && event.tags["env"] == "staging")
        #expect(event.tags["run_id"] == "20260101T000000Z-beef" && event.tags["error_code"] == "data")
        #expect(
            event.tags["operation"] == "copy" && event.tags["sqlstate"] == "23505" && event.tags["exit_status"] == "69")
        #expect(event.fingerprint == ["bems", "load", "copy"])
        #expect(event.environment == "staging" && event.level == "error" && event.release == "bems@\(BEMS.version)")
        #expect(event.exception.values.first?.type == "load.copy")
        #expect(event.extra["rows_in"] == 500)
        let body = String(decoding: try event.envelope(), as: UTF8.self)
        for secret in ["hunter22", "f1_z1_ac1", "2019-03-04"] { #expect(!body.contains(secret), "\(secret)") }
        let lines = body.split(separator: "\n")
        #expect(lines.count == 3)
        let header = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String]
        #expect(header?["event_id"] == "0123456789abcdef0123456789abcdef")
        let item = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(item?["type"] as? String == "event")
        #expect(item?["length"] as? Int == lines[2].utf8.count)
        #expect(try JSONDecoder().decode(SentryEvent.self, from: Data(lines[2].utf8)) == event)
        #expect(SentryEvent.newEventID().count == 32)
    }

    @Test func eventArrivesAtTheEnvelopeEndpoint() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let dsn = try #require(SentryDSN("http://publickey@127.0.0.1:\(server.port)/42"))
        let outcome = await SentryEvent(report: failedLoad()).send(to: dsn, timeout: 30)
        #expect(outcome == .status(200) && outcome.succeeded)
        let request = try #require(server.requests.first)
        #expect(request.method == "POST" && request.path == "/api/42/envelope/")
        #expect(request.headers["x-sentry-auth"]?.contains("sentry_key=publickey") == true)
        #expect(request.headers["content-type"] == "application/x-sentry-envelope")
        let event = try JSONDecoder().decode(SentryEvent.self, from: Data(request.text.split(separator: "\n")[2].utf8))
        #expect(event.tags["run_id"] == "20260101T000000Z-beef")
        #expect(!request.raw.contains("hunter22") && !request.raw.contains("f1_z1_ac1"))
    }
}

@Suite struct AlertRulesTests {
    @Test func aGoodRunRaisesNothing() {
        var r = MonitoringFixture.report(.load)
        r.chunks = ChunkTimings([1, 2])
        r.rowsIn = 100
        #expect(AlertRules.evaluate(r, thresholds: AlertThresholds()).isEmpty)
    }

    @Test func everyRule() {
        var r = MonitoringFixture.report(.load, status: .failed)
        r.failure = Failure(code: "unavailable", operation: "connect", sqlState: nil, message: "refused")
        r.chunks = ChunkTimings([1, 10.5])
        r.rowsIn = 1000
        r.rowsRejected = 2
        r.storage = StoragePreflight.evaluate(
            databaseBytes: 100 << 20, pendingReadings: 1, bytesPerReading: 180, source: "x", limitMB: 500,
            warnShare: 0.8, force: false)
        r.storage?.databaseBytesAfter = 450 << 20
        r.storage?.connectionsInUse = 75
        r.storage?.connectionsPlanned = 5
        r.storage?.maxConnections = 100
        var t = AlertThresholds()
        t.runSeconds = [.load: 2]
        let alerts = AlertRules.evaluate(r, thresholds: t)
        #expect(
            alerts.map(\.kind) == [
                "import_failed", "slow_chunk", "time_budget", "error_rate", "storage", "connections",
            ])
        #expect(alerts[0].severity == .critical && alerts.dropFirst().allSatisfy { $0.severity == .warning })
        #expect(
            alerts[0].message.contains(
                "load (staging, run 20260101T000000Z-0001) failed with exit status 69: connect: refused"))
        #expect(alerts[1].message.contains("slowest chunk took 10.5 s (over 10.0 s"))
        #expect(alerts[2].message.contains("took 3.0 s, over its time budget of 2.0 s"))
        #expect(alerts[4].message.contains("450.0 MB of its 500.0 MB limit (90.0%)"))
        #expect(alerts[5].message.contains("(80.0%)"))
        // Before the load (no size after): the estimate counts.
        r.storage?.databaseBytesAfter = nil
        r.storage?.estimatedBytes = 420 << 20
        #expect(
            AlertRules.evaluate(r, thresholds: t).contains {
                $0.kind == "storage" && $0.message.contains("about 420.0 MB")
            })
        r.storage?.estimatedBytes = 100 << 20
        #expect(!AlertRules.evaluate(r, thresholds: t).contains { $0.kind == "storage" })
        #expect(Alert.Severity.warning < .critical)
    }

    @Test func webhookTextPutsCriticalFirstAndMasks() throws {
        let text = AlertWebhook.text(
            for: [
                Alert(.warning, "slow_chunk", "slow"),
                Alert(.critical, "import_failed", "failed at \"2019-03-04,1.5\" via https://u:tok@h/x"),
            ], secrets: ["tok"])
        #expect(text.hasPrefix(":rotating_light: CRITICAL [import_failed] failed at \"…\""))
        #expect(text.hasSuffix(":warning: WARNING [slow_chunk] slow"))
        #expect(!text.contains("tok") && !text.contains("1.5"))
        let json = try JSONSerialization.jsonObject(with: AlertWebhook.payload("a \"b\"\nc")) as? [String: String]
        #expect(json == ["text": "a \"b\"\nc"])
    }

    @Test func pushgatewayGroupURL() {
        #expect(
            Pushgateway.url(base: "http://pg:9091/", env: "prod", stage: .load)?.absoluteString
                == "http://pg:9091/metrics/job/bems/env/prod/stage/load")
    }
}

@Suite struct RunMonitorTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func monitor(_ dir: TemporaryDirectory, variables: [String: String], pushgateway: String? = nil) -> RunMonitor {
        var config = PipelineConfig.testing(dir)
        config.monitoring.pushgatewayURL = pushgateway
        return RunMonitor(
            config: config, env: "staging", variables: variables,
            secrets: SecretScrubber.secrets(ofConninfo: "postgresql://importer:hunter22@db.example/app"))
    }

    func failedReport() -> RunReport {
        var r = MonitoringFixture.report(.load, status: .failed, runID: "20260101T000000Z-dead")
        r.failure = Failure(
            code: "unavailable", operation: "connect", sqlState: "08006",
            message: "cannot connect (postgresql://importer:hunter22@db.example/app): refused")
        r.errors = ["unavailable": 1]
        return r
    }

    @Test func aFailureReachesSentryTheWebhookAndThePushgatewayWithoutSecrets() async throws {
        let sentry = try LocalHTTPServer()
        let hook = try LocalHTTPServer()
        let gateway = try LocalHTTPServer()
        defer { [sentry, hook, gateway].forEach { $0.stop() } }
        let dir = TemporaryDirectory()
        var m = monitor(
            dir,
            variables: [
                "SENTRY_DSN": "http://sentrykey@127.0.0.1:\(sentry.port)/5",
                "BEMS_ALERT_WEBHOOK_URL": hook.baseURL + "/services/T000/B000/webhooktoken",
            ], pushgateway: gateway.baseURL)
        m.config.monitoring.timeoutSeconds = 30  // delivery must not time out on a loaded test machine
        #expect(m.sentryDSN?.projectID == "5" && m.webhookURL != nil)
        var report = failedReport()
        let d = await m.publish(&report, chunkSeconds: [0.5], logger: logger)
        #expect(d.sentry == .status(200) && d.webhook == .status(200) && d.pushgateway == .status(200))

        let event = try #require(sentry.requests.first)
        #expect(event.path == "/api/5/envelope/")
        #expect(event.text.contains(#""run_id":"20260101T000000Z-dead""#))
        #expect(event.text.contains(#""fingerprint":["bems","load","connect"]"#))

        let post = try #require(hook.requests.first)
        #expect(post.method == "POST" && post.path == "/services/T000/B000/webhooktoken")
        let body = try #require(try JSONSerialization.jsonObject(with: post.body) as? [String: String])
        #expect(Array(body.keys) == ["text"])
        #expect(body["text"]?.hasPrefix(":rotating_light: CRITICAL [import_failed] load (staging") == true)

        let push = try #require(gateway.requests.first)
        #expect(push.method == "PUT" && push.path == "/metrics/job/bems/env/staging/stage/load")
        let pushed = try ExpositionParser(push.text)
        #expect(pushed.sample("bems_run_success")?.value == 0)
        #expect(pushed.sample("bems_run_alerts", ["severity": "critical"])?.value == 1)

        for request in sentry.requests + hook.requests + gateway.requests {
            #expect(!request.raw.contains("hunter22"))
            #expect(!request.raw.replacingOccurrences(of: post.path, with: "").contains("webhooktoken"))
        }
        // Written locally too: the report (alerts included, no password) and the textfile.
        let path = try #require(d.reportPath)
        let saved = try AtomicFile.readJSON(RunReport.self, from: path)
        #expect(saved.alerts.map(\.kind) == ["import_failed"])
        #expect(!(try String(contentsOfFile: path, encoding: .utf8)).contains("hunter22"))
        let metrics = try #require(d.metricsPath)
        #expect(metrics == dir.path + "/work/metrics/bems_load.prom")
        _ = try ExpositionParser(try String(contentsOfFile: metrics, encoding: .utf8))
    }

    @Test func withoutADSNOrWebhookNothingIsSent() async throws {
        let dir = TemporaryDirectory()
        var report = failedReport()
        let m = monitor(dir, variables: ["SENTRY_DSN": ""])
        #expect(m.sentryDSN == nil && m.webhookURL == nil)
        let d = await m.publish(&report, logger: logger)
        #expect(d.sentry == nil && d.webhook == nil && d.pushgateway == nil)
        #expect(d.reportPath != nil && d.metricsPath != nil)
    }

    @Test func aSuccessRaisesNoAlertAndSendsNoEvent() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let dir = TemporaryDirectory()
        var report = MonitoringFixture.report(.refresh)
        let d = await monitor(
            dir,
            variables: ["SENTRY_DSN": "http://k@127.0.0.1:\(server.port)/1", "BEMS_ALERT_WEBHOOK_URL": server.baseURL]
        ).publish(&report, logger: logger)
        #expect(d.sentry == nil && d.webhook == nil)
        #expect(server.requests.isEmpty)
        // Up to date: no report is written over the run's own.
        var again = MonitoringFixture.report(.refresh)
        let u = await monitor(dir, variables: [:]).publish(&again, upToDate: true, logger: logger)
        #expect(u.reportPath == nil && u.metricsPath != nil)
    }

    @Test func deliveryProblemsAreReportedNotThrown() async throws {
        let refusing = try LocalHTTPServer()
        let port = refusing.port
        refusing.stop()  // nothing listens there any more
        let failing = try LocalHTTPServer(status: 500)
        let silent = try LocalHTTPServer(delay: 60)
        defer { [failing, silent].forEach { $0.stop() } }
        let dir = TemporaryDirectory()
        var m = monitor(
            dir,
            variables: [
                "SENTRY_DSN": "http://k@127.0.0.1:\(port)/1", "BEMS_ALERT_WEBHOOK_URL": failing.baseURL + "/hook",
            ])
        m.config.monitoring.timeoutSeconds = 30  // generous: a loaded test machine must not turn these into timeouts
        var report = failedReport()
        let d = await m.publish(&report, logger: logger)
        #expect(d.sentry?.succeeded == false)
        #expect(d.webhook == .status(500))
        // A Pushgateway that never answers: the timeout gives up (the server would answer after 60 s).
        var slow = monitor(dir, variables: [:], pushgateway: silent.baseURL)
        slow.config.monitoring.timeoutSeconds = 1
        var report2 = failedReport()
        let s = await slow.publish(&report2, logger: logger)
        guard case .failed = s.pushgateway else {
            Issue.record("expected a timeout, got \(String(describing: s.pushgateway))")
            return
        }
        // A bad webhook variable is ignored.
        #expect(monitor(dir, variables: ["BEMS_ALERT_WEBHOOK_URL": "mailto:x@y"]).webhookURL == nil)
    }
}
