import BEMSServer
import Foundation
import Testing

@testable import BEMSCore

/// The admin HTTP API over real HTTP (a socket client to 127.0.0.1 and an ephemeral port), against a real PostgreSQL
/// and the built stage executables: the happy path of every endpoint, auth failures, malformed and oversized bodies,
/// two import requests at once, and a database that is stopped under the running server.
///
/// Tests that run imports take ``ExclusiveLoadTests`` (they start stage processes, like the fault tests).
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(6)))
struct AdminAPITests {
    // MARK: - Happy path

    @Test func importRunsEveryStageAndTheStatusEndpointsFollowIt() async throws {
        try await ExclusiveLoadTests.shared.run {
            try await APIFixture().use { f in
                try await importHappyPath(f)
            }
        }
    }

    func importHappyPath(_ f: APIFixture) async throws {
        let client = f.client
        let health = try await client.send("GET", "/healthz")
        #expect(health.status == 200)
        let healthJSON = try health.json()
        #expect(healthJSON["status"] as? String == "ok")
        #expect(healthJSON["database"] as? String == "up")
        #expect(healthJSON["mode"] as? String == "read-write")

        // Every day (the dev sample would keep none of one day).
        let started = try await client.send("POST", "/admin/import", token: f.devToken, json: #"{"sample": 1}"#)
        #expect(started.status == 202, "\(started)")
        let record = try started.decode(ImportRecord.self)
        #expect(started.headers["location"] == "/admin/import/status/\(record.id)")
        #expect(record.env == "dev")
        #expect(record.stages == Stage.allCases)
        #expect(record.sample == 1)

        let (done, seen) = try await f.waitForImport(record.id)
        #expect(done.state == .succeeded, "\(done.error ?? "") \(seen)")
        #expect(done.currentStage == nil)
        #expect(done.steps.map(\.state) == Array(repeating: .succeeded, count: 5), "\(done.steps)")
        for step in done.steps {
            #expect(step.exitStatus == 0)
            #expect((step.seconds ?? 0) > 0)
            #expect(step.report?.stage == step.stage)
            #expect(step.report?.runID == step.runID)
            #expect(step.report?.status == .succeeded)
        }
        let reports = Dictionary(uniqueKeysWithValues: done.steps.compactMap { s in s.report.map { (s.stage, $0) } })
        // Validate counts CSV rows: 2 files of 1440 minutes plus one rejected line each.
        #expect(reports[.validate]?.rowsIn == 2 * 1441)
        #expect(reports[.validate]?.rowsRejected == 2)
        #expect(reports[.validate]?.errors.values.reduce(0, +) == 2)
        let normalized = try #require(reports[.normalize]?.rowsOut)
        #expect(normalized > 0)
        #expect(reports[.load]?.rowsOut == normalized)
        #expect((reports[.load]?.chunks?.count ?? 0) > 0)
        let db = try f.connect()
        #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == Int64(normalized))
        #expect(try db.exec("SELECT count(*) FROM daily_aggregates").scalarInt64() ?? 0 > 0)

        // The list: nothing running, the import first, the stage runs of the work dir.
        let list = try await client.send("GET", "/admin/import/status", token: f.devToken)
        #expect(list.status == 200)
        let status = try list.decode(ImportStatus.self)
        #expect(status.env == "dev")
        #expect(status.current == nil)
        #expect(status.recent.first?.id == record.id)
        #expect(Set(status.runs.map(\.stage)) == Set(Stage.allCases))

        // A stage run by its run id.
        let loadRun = try #require(done.steps.first { $0.stage == .load }?.runID)
        let stageRun = try await client.send("GET", "/admin/import/status/\(loadRun)", token: f.devToken)
        #expect(stageRun.status == 200, "\(stageRun)")
        let stageJSON = try stageRun.json()
        #expect((stageJSON["runReport"] as? [String: Any])?["stage"] as? String == "load")
        let missing = try await client.send("GET", "/admin/import/status/20190101T000000Z-0", token: f.devToken)
        #expect(missing.status == 404)

        // Nothing changed: a second import finds every stage up to date.
        let again = try await client.send("POST", "/admin/import", token: f.devToken, json: #"{"sample": 1}"#)
        #expect(again.status == 202, "\(again)")
        let (second, _) = try await f.waitForImport(try again.decode(ImportRecord.self).id)
        #expect(second.state == .succeeded)
        #expect(second.steps.map(\.state) == Array(repeating: .upToDate, count: 5), "\(second.steps)")
        #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == Int64(normalized))

        // The records are in the work dir too.
        #expect(FileManager.default.fileExists(atPath: f.work + "/serve/imports/\(record.id).json"))
        #expect(FileManager.default.fileExists(atPath: f.work + "/serve/imports/\(record.id)/load.log"))

        // Metrics: the server's counters and the stages' textfiles, each family declared once.
        let metrics = try await client.send("GET", "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = metrics.text
        #expect(text.contains(#"bems_api_requests_total{route="/admin/import",method="POST",status="202"} 2"#), "\(text)")
        #expect(text.contains(#"bems_api_imports_started_total{env="dev"} 2"#))
        for stage in Stage.allCases {
            #expect(text.contains(#"bems_run_success{env="dev",stage="\#(stage.rawValue)"} 1"#), "\(stage)")
        }
        let typeLines = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(typeLines).count == typeLines.count, "a family is declared twice")

        // The stages never got the service tokens, and nothing the server wrote holds them.
        #expect(f.server.supervisor.settings.childEnvironment["dev"]?["BEMS_DEV_SERVICE_TOKEN"] == nil)
        #expect(f.server.supervisor.settings.childEnvironment["dev"]?["BEMS_STAGING_SERVICE_TOKEN"] == nil)
        let written = f.everythingWritten()
        #expect(!written.contains(f.devToken))
        #expect(!written.contains(f.stagingToken))
    }

    // MARK: - Two requests at once

    @Test func twoImportRequestsAtOnceStartOneImportAndTheOtherGets409() async throws {
        try await ExclusiveLoadTests.shared.run {
            try await APIFixture().use { f in
                let client = f.client
                let token = f.devToken
                async let first = client.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
                async let second = client.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
                let answers = try await [first, second]
                #expect(answers.map(\.status).sorted() == [202, 409], "\(answers)")
                let conflict = try #require(answers.first { $0.status == 409 })
                let accepted = try #require(answers.first { $0.status == 202 })
                let id = try accepted.decode(ImportRecord.self).id
                #expect((try conflict.json()["error"] as? String)?.contains("import \(id) is running") == true, "\(conflict)")
                let (done, _) = try await f.waitForImport(id)
                #expect(done.state == .succeeded, "\(done.error ?? "")")
                // Only one import ever ran.
                let status = try await client.send("GET", "/admin/import/status", token: token).decode(ImportStatus.self)
                #expect(status.recent.map(\.id) == [id])
            }
        }
    }

    // MARK: - Auth

    @Test func adminEndpointsRefuseMissingWrongAndOtherEnvironmentTokens() async throws {
        try await APIFixture().use { f in
            let client = f.client
            let endpoints: [(String, String)] = [
                ("POST", "/admin/import"), ("GET", "/admin/import/status"),
                ("GET", "/admin/import/status/20190101T000000Z-0"), ("POST", "/admin/validate"),
            ]
            for (method, path) in endpoints {
                let none = try await client.send(method, path)
                #expect(none.status == 401, "\(method) \(path): \(none)")
                #expect(none.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
                let wrong = try await client.send(method, path, token: f.devToken + "x")
                #expect(wrong.status == 401, "\(method) \(path): \(wrong)")
                let prefix = try await client.send(method, path, token: String(f.devToken.dropLast()))
                #expect(prefix.status == 401, "\(method) \(path): \(prefix)")
                let basic = try await client.send(method, path, headers: ["Authorization": "Basic \(f.devToken)"])
                #expect(basic.status == 401, "\(method) \(path): \(basic)")
                let other = try await client.send(method, path, token: f.stagingToken)
                #expect(other.status == 403, "\(method) \(path): \(other)")
                for answer in [none, wrong, prefix, basic, other] {
                    #expect(!answer.text.contains(f.devToken) && !answer.text.contains(f.stagingToken))
                    #expect(!answer.text.contains(String(f.devToken.dropLast())))
                }
            }
            // A token for dev asking for staging, and the staging token for staging.
            let cross = try await client.send("POST", "/admin/import", token: f.devToken, json: #"{"env": "staging"}"#)
            #expect(cross.status == 403, "\(cross)")
            let staging = try await client.send("GET", "/admin/import/status?env=staging", token: f.stagingToken)
            #expect(staging.status == 200, "\(staging)")
            #expect(try staging.decode(ImportStatus.self).env == "staging")
            // A bad body with a wrong token is 401, not 400: the body is not read without a valid token.
            let badBody = try await client.send("POST", "/admin/import", token: "nope-nope-nope-nope", json: "{")
            #expect(badBody.status == 401)
            // Health and metrics need no token.
            #expect(try await client.send("GET", "/healthz").status == 200)
            #expect(try await client.send("GET", "/metrics").status == 200)
            // Nothing logged holds a token or the database URL.
            let written = f.everythingWritten()
            #expect(!written.contains(f.devToken))
            #expect(!written.contains(f.stagingToken))
            #expect(!written.contains(f.databaseURL))
            #expect(!f.capture.lines(atLeast: .trace).isEmpty)
        }
    }

    @Test func aClientOverTheRequestLimitGets429WithRetryAfterBeforeItsTokenIsRead() async throws {
        try await APIFixture(requestLimit: (0.5, 3)).use { f in
            let client = f.client
            for _ in 0..<3 {
                let admitted = try await client.send("GET", "/admin/import/status", token: f.devToken)
                #expect(admitted.status == 200, "\(admitted)")
            }
            let refused = try await client.send("GET", "/admin/import/status", token: f.devToken)
            #expect(refused.status == 429, "\(refused)")
            #expect(["1", "2"].contains(refused.headers["retry-after"] ?? ""), "\(refused.headers)")
            #expect(refused.text.contains("serve.requestsPerSecond"), "\(refused.text)")
            // Without a token too: the limit comes first, so guessing tokens is limited as well.
            #expect(try await client.send("POST", "/admin/import").status == 429)
            // Probes and scrapers are not limited; the refusals are counted.
            for _ in 0..<5 { #expect(try await client.send("GET", "/healthz").status == 200) }
            let metrics = try await client.send("GET", "/metrics").text
            #expect(
                metrics.contains(#"bems_api_requests_total{route="/admin/import/status",method="GET",status="429"} 1"#),
                "\(metrics)")
            // Two seconds on, one more request is admitted.
            try await Task.sleep(for: .milliseconds(2_100))
            #expect(try await client.send("GET", "/admin/import/status", token: f.devToken).status == 200)
        }
    }

    @Test func anIdleConnectionIsClosedAfterServeIdleTimeoutSeconds() async throws {
        try await APIFixture(idleTimeoutSeconds: 0.5).use { f in
            // Connected, nothing sent: closed by the server after about half a second, not left open.
            let closedAfter = try await f.client.secondsUntilClosedWhenIdle(limit: 20)
            let seconds = try #require(closedAfter, "the idle connection was still open after 20 s")
            #expect(seconds >= 0.3 && seconds < 10, "closed after \(seconds) s")
            // Requests still get their answers.
            #expect(try await f.client.send("GET", "/healthz").status == 200)
        }
    }

    // MARK: - Bodies

    @Test func malformedBodiesGet400NamingTheFieldAndOversizedOnes413() async throws {
        try await APIFixture(maxBodyBytes: 4096).use { f in
            let client = f.client
            let token = f.devToken
            let cases: [(String, String)] = [
                ("{", "body"), ("[]", "body"), (#""dev""#, "body"), (#"{"stages": "load"}"#, "stages"),
                (#"{"stages": []}"#, "stages"), (#"{"stages": ["load", "load"]}"#, "stages[1]"),
                (#"{"stages": ["nope"]}"#, "stages[0]"), (#"{"stages": ["load", 3]}"#, "stages[1]"),
                (#"{"sample": 2}"#, "sample"), (#"{"sample": "0.5"}"#, "sample"), (#"{"sample": true}"#, "sample"),
                (#"{"env": 3}"#, "env"), (#"{"env": "qa"}"#, "env"), (#"{"foo": 1}"#, "foo"),
            ]
            for (body, field) in cases {
                let answer = try await client.send("POST", "/admin/import", token: token, json: body)
                #expect(answer.status == 400, "\(body): \(answer)")
                let json = try answer.json()
                #expect(json["field"] as? String == field, "\(body): \(answer)")
                #expect((json["error"] as? String)?.hasPrefix(field) == true || field == "body", "\(body): \(answer)")
            }
            // Over the JSON limit (64 KiB), declared or chunked.
            let big = [UInt8](repeating: 0x20, count: 70_000)
            let declared = try await client.send("POST", "/admin/import", token: token, body: big)
            #expect(declared.status == 413, "\(declared)")
            #expect(declared.headers["connection"] == "close")
            let chunked = try await client.send("POST", "/admin/import", token: token, body: big, chunked: true)
            #expect(chunked.status == 413, "\(chunked)")
            // None of these started an import.
            let status = try await client.send("GET", "/admin/import/status", token: token).decode(ImportStatus.self)
            #expect(status.recent.isEmpty)

            // Uploads: over serve.maxBodyBytes (4096 here), declared or chunked.
            let floor1 = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f.input + "/2019Floor1.csv")))
            let tooBig = Array(floor1.prefix(5000))
            let upload = "/admin/validate?name=2019Floor1.csv"
            #expect(try await client.send("POST", upload, token: token, body: tooBig).status == 413)
            #expect(try await client.send("POST", upload, token: token, body: tooBig, chunked: true).status == 413)
            // Bad names.
            let lines = Array(floor1.prefix(3000))
            for (path, field) in [
                ("/admin/validate", "name"), ("/admin/validate?name=..%2Fx.csv", "name"),
                ("/admin/validate?name=2019Floor9.csv", "name"), ("/admin/validate?name=notes.txt", "name"),
                ("/admin/validate?floor=12", "floor"), ("/admin/validate?env=qa", "env"),
            ] {
                let answer = try await client.send("POST", path, token: token, body: lines)
                #expect(answer.status == 400, "\(path): \(answer)")
                #expect(try answer.json()["field"] as? String == field, "\(path): \(answer)")
            }
            let emptyUpload = try await client.send("POST", upload, token: token, body: [])
            #expect(emptyUpload.status == 400, "\(emptyUpload)")

            // 3000 bytes end in the middle of a line: that line is rejected, over the threshold.
            let cut = try await client.send("POST", upload, token: token, body: lines)
            #expect(cut.status == 200, "\(cut)")
            let cutAnswer = try cut.decode(UploadValidation.Answer.self)
            #expect(cutAnswer.source == "upload")
            #expect(!cutAnswer.passed)
            #expect(cutAnswer.exitStatus == 65)
            #expect(cutAnswer.report.files.map(\.file) == ["2019Floor1.csv"])
            #expect(cutAnswer.report.files.first?.path == "2019Floor1.csv")
            #expect(cutAnswer.report.files.first?.rejectedRecords == 1)
            #expect(cutAnswer.diagnostics.count == 1)
            #expect(cutAnswer.diagnostics.first?.hasPrefix("2019Floor1.csv:") == true, "\(cutAnswer.diagnostics)")
            // Whole lines only, sent chunked, named by floor: passes.
            let whole = Array(lines[...lines.lastIndex(of: 0x0A)!])
            let fine = try await client.send("POST", "/admin/validate?floor=1", token: token, body: whole, chunked: true)
            #expect(fine.status == 200, "\(fine)")
            let fineAnswer = try fine.decode(UploadValidation.Answer.self)
            #expect(fineAnswer.passed)
            #expect(fineAnswer.exitStatus == 0)
            #expect(fineAnswer.report.files.first?.file == "upload-floor1.csv")
            #expect((fineAnswer.report.files.first?.rows ?? 0) > 0)
            // No body: the configured inputs.
            let configured = try await client.send("POST", "/admin/validate", token: token)
            #expect(configured.status == 200, "\(configured)")
            let configuredAnswer = try configured.decode(UploadValidation.Answer.self)
            #expect(configuredAnswer.source == "configured")
            #expect(configuredAnswer.passed)
            #expect(configuredAnswer.report.files.map(\.file) == ["2019Floor1.csv", "2019Floor2.csv"])
            #expect(configuredAnswer.report.totals["rejectedRecords"] == 2)
            // Validation runs aside: the pipeline's work dir got no validate run.
            #expect(WorkDir(root: f.work).runIDs(.validate).isEmpty)
        }
    }

    // MARK: - Database down

    @Test func databaseStoppedStatusStillAnswersAndImportsGet503() async throws {
        try await ExclusiveLoadTests.shared.run {
            let pg = try ThrowawayServer()
            defer { pg.remove() }
            try await APIFixture(url: try pg.url()).use { f in
                try await databaseDown(f, pg)
            }
        }
    }

    func databaseDown(_ f: APIFixture, _ pg: ThrowawayServer) async throws {
        let client = f.client
        let token = f.devToken
        let first = try await client.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
        #expect(first.status == 202, "\(first)")
        let id = try first.decode(ImportRecord.self).id
        let (done, _) = try await f.waitForImport(id)
        #expect(done.state == .succeeded, "\(done.error ?? "")")

        try pg.stop()

        let health = try await client.send("GET", "/healthz")
        #expect(health.status == 200)
        let healthJSON = try health.json()
        #expect(healthJSON["database"] as? String == "down", "\(health)")
        #expect(healthJSON["mode"] as? String == "read-only")
        let refused = try await client.send("POST", "/admin/import", token: token, json: #"{"sample": 1}"#)
        #expect(refused.status == 503, "\(refused)")
        let message = try refused.json()["error"] as? String ?? ""
        #expect(message.contains("dev database is unreachable"), "\(message)")
        #expect(message.contains("status endpoints"), "\(message)")
        // No connection details: not the socket folder, the port, the URL or libpq's words.
        for answer in [health, refused] {
            #expect(!answer.text.contains(pg.directory), "\(answer)")
            #expect(!answer.text.contains(String(pg.port)), "\(answer)")
            #expect(!answer.text.contains("postgresql://"), "\(answer)")
            #expect(!answer.text.lowercased().contains("socket"), "\(answer)")
        }

        // Status answers from memory and the work dir.
        let list = try await client.send("GET", "/admin/import/status", token: token)
        #expect(list.status == 200)
        let status = try list.decode(ImportStatus.self)
        #expect(status.recent.map(\.id) == [id])
        #expect(Set(status.runs.map(\.stage)) == Set(Stage.allCases))
        let one = try await client.send("GET", "/admin/import/status/\(id)", token: token)
        #expect(one.status == 200)
        #expect(try one.decode(ImportRecord.self).state == .succeeded)

        // Stages that need no database still run.
        let local = try await client.send(
            "POST", "/admin/import", token: token, json: #"{"stages": ["normalize", "validate"], "sample": 1}"#)
        #expect(local.status == 202, "\(local)")
        let localRecord = try local.decode(ImportRecord.self)
        #expect(localRecord.stages == [.validate, .normalize])
        let (localDone, _) = try await f.waitForImport(localRecord.id)
        #expect(localDone.state == .succeeded, "\(localDone.error ?? "")")

        try pg.start()
        let back = try await client.send("GET", "/healthz")
        #expect(try back.json()["database"] as? String == "up", "\(back)")
    }
}
