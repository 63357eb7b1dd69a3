import Foundation
import Logging
import Testing

@testable import BEMSCore

/// Manifests and reports built in memory for the monitoring tests.
enum MonitoringFixture {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    static func manifest(
        _ stage: Stage, runID: String = "20260101T000000Z-0001", totals: [String: Int], chunks: [ChunkRecord] = [],
        upstream: String? = nil, passed: Bool = true, sample: SampleRecord? = nil
    ) -> StageManifest {
        StageManifest(
            stage: stage, runID: runID, previousRunID: nil, createdAt: RunReport.timestamp(t0),
            bemsVersion: BEMS.version,
            env: "staging", fingerprint: "f", upstreamRunID: upstream, inputs: [], chunks: chunks, passed: passed,
            totals: totals, seconds: 2.5, sample: sample)
    }

    static func chunk(_ name: String, rows: Int, bytes: Int, inserts: Int? = nil, updates: Int? = nil) -> ChunkRecord {
        ChunkRecord(
            file: "chunks/\(name)", sha256: String(repeating: "a", count: 64), bytes: bytes, rows: rows,
            minTimestamp: 0,
            maxTimestamp: 60, floor: 1, day: "2019-03-04", source: "x", inserts: inserts, updates: updates, skips: nil)
    }

    static func report(
        _ stage: Stage = .load, status: RunReport.Status = .succeeded, runID: String = "20260101T000000Z-0001",
        finished: Date = t0
    ) -> RunReport {
        RunReport(
            stage: stage, runID: runID, env: "staging", status: status, exitStatus: status == .succeeded ? 0 : 69,
            startedAt: finished.addingTimeInterval(-3), finishedAt: finished)
    }
}

@Suite struct ChunkTimingsTests {
    @Test func nearestRankPercentiles() throws {
        let t = try #require(ChunkTimings((1...20).map(Double.init).shuffled()))
        #expect(t.count == 20 && t.p50Seconds == 10 && t.p95Seconds == 19 && t.maxSeconds == 20)
        let one = try #require(ChunkTimings([0.25]))
        #expect(one.p50Seconds == 0.25 && one.p95Seconds == 0.25 && one.maxSeconds == 0.25)
        #expect(ChunkTimings([]) == nil)
        #expect(ChunkTimings.percentile([1, 2, 3, 4], 0.5) == 2)
        #expect(ChunkTimings.percentile([1, 2, 3, 4], 0) == 1)
    }
}

@Suite struct RunReportTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test func validateRunCountsRowsAndErrorsByCode() async throws {
        let dir = TemporaryDirectory()
        // 2000 rows; rows 5 and 9 hold a bad number, row 7 a negative power: 3 rejected rows of 2000 (0.15%).
        dir.write(
            "in/2019Floor1.csv",
            CSV.file(floor: 1, minutes: 2000) { r, c in
                if c == 0, r == 5 || r == 9 { return "abc" }
                if c == 0, r == 7 { return "-1" }
                return "1.5"
            })
        var config = PipelineConfig.testing(dir)
        config.rejectThreshold = 0.01
        let result = try await ValidateStage.run(ValidateStage.Options(config: config, env: "dev"), logger: logger)
        let report = RunReport.make(
            manifest: result.manifest, work: WorkDir(root: config.workDir), observations: RunObservations(retries: 2),
            exitStatus: result.exitStatus, startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0 + 1.5)
        #expect(report.status == .succeeded && report.exitStatus == 0 && report.failure == nil)
        #expect(report.rowsIn == 2000)
        #expect(report.rowsRejected == 3)
        #expect(report.rowsOut == result.report.totals["readings"])
        #expect(report.bytesIn > 0)
        #expect(report.errors == ["bad_number": 2, "out_of_range": 1])
        #expect(report.retries == 2)
        #expect(report.seconds == 1.5)
        #expect(abs(report.errorRate - 0.0015) < 1e-12)
        let alerts = AlertRules.evaluate(report, thresholds: AlertThresholds())
        #expect(alerts.map(\.kind) == ["error_rate"])
        #expect(alerts[0].message.contains("3 of 2000 rows rejected (0.15%, over 0.10%)"))
    }

    @Test func validateOverItsThresholdIsAFailedParseRun() throws {
        let m = MonitoringFixture.manifest(
            .validate, totals: ["rows": 10, "readings": 5, "rejectedRecords": 5, "files": 2, "failedFiles": 1],
            passed: false)
        let r = RunReport.make(
            manifest: m, work: WorkDir(root: "/nonexistent"), observations: RunObservations(), exitStatus: .dataError,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(r.status == .failed && r.exitStatus == 65)
        #expect(r.failure?.operation == "parse" && r.failure?.code == "data")
        #expect(r.failure?.message.contains("1 of 2 files failed validation") == true)
        #expect(r.errors == ["data": 1])
    }

    @Test func normalizeDedupeLoadAndRefreshMapTheirCounts() throws {
        let dir = TemporaryDirectory()
        let work = WorkDir(root: dir.path)
        let normalize = MonitoringFixture.manifest(
            .normalize, runID: "n1", totals: ["readings": 90, "bytes": 300, "inputBytes": 5000],
            chunks: [MonitoringFixture.chunk("a", rows: 90, bytes: 300)],
            sample: SampleRecord(fraction: 0.5, daysSeen: 2, daysKept: 1, readingsSkipped: 10))
        try AtomicFile.makeDirectory(work.runDirectory(.normalize, "n1"))
        try work.publish(normalize)
        let n = RunReport.make(
            manifest: normalize, work: work, observations: RunObservations(), exitStatus: .ok,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(n.rowsIn == 100 && n.rowsOut == 90 && n.bytesIn == 5000 && n.bytesOut == 300)

        let dedupe = MonitoringFixture.manifest(
            .dedupe, runID: "d1", totals: ["readingsIn": 90, "inserts": 70, "updates": 5, "skips": 15],
            chunks: [
                MonitoringFixture.chunk("b", rows: 40, bytes: 100, inserts: 40, updates: 0),
                MonitoringFixture.chunk("c", rows: 35, bytes: 120, inserts: 30, updates: 5),
            ], upstream: "n1")
        try AtomicFile.makeDirectory(work.runDirectory(.dedupe, "d1"))
        try work.publish(dedupe)
        let d = RunReport.make(
            manifest: dedupe, work: work, observations: RunObservations(), exitStatus: .ok,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(d.rowsIn == 90 && d.rowsOut == 75 && d.bytesIn == 300 && d.bytesOut == 220)
        #expect(d.chunks == nil)

        let load = MonitoringFixture.manifest(
            .load, runID: "l1",
            totals: [
                "inserted": 70, "updated": 5, "chunksLoaded": 2, "chunksSkipped": 0, "maxChunkMilliseconds": 1500,
            ],
            upstream: "d1")
        let logged = RunReport.make(
            manifest: load, work: work, observations: RunObservations(chunkSeconds: [0.5, 1.5], retries: 1),
            exitStatus: .ok, startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(logged.rowsIn == 75 && logged.rowsOut == 75 && logged.bytesIn == 220 && logged.retries == 1)
        #expect(logged.chunks == ChunkTimings(count: 2, p50Seconds: 0.5, p95Seconds: 1.5, maxSeconds: 1.5))
        // Without the log, the manifest's slowest chunk still shows.
        let fromManifest = RunReport.fromManifest(load, work: work)
        #expect(fromManifest.chunks?.maxSeconds == 1.5 && fromManifest.chunks?.count == 2)
        #expect(fromManifest.seconds == 2.5 && fromManifest.status == .succeeded)

        let verifyFailed = RunReport.make(
            manifest: load, work: work, observations: RunObservations(), exitStatus: .dataError,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(verifyFailed.failure?.operation == "verify")

        let refresh = MonitoringFixture.manifest(.refresh, totals: ["aggregateRows": 33])
        let r = RunReport.make(
            manifest: refresh, work: work, observations: RunObservations(), exitStatus: .ok,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(r.rowsOut == 33 && r.figures == ["aggregateRows": 33])
        let odd = RunReport.make(
            manifest: refresh, work: work, observations: RunObservations(), exitStatus: .unavailable,
            startedAt: MonitoringFixture.t0, finishedAt: MonitoringFixture.t0)
        #expect(odd.failure?.operation == "refresh")
    }

    @Test func failedRunKeepsNoSecret() throws {
        let error = PipelineError(
            .unavailable,
            "cannot connect to the staging database (postgresql://importer:hunter22@db.example:5432/app): refused")
        let r = RunReport.failed(
            stage: .dedupe, env: "staging", runID: "r1", error: error, exitStatus: .unavailable,
            observations: RunObservations(chunkSeconds: [1], retries: 3), startedAt: MonitoringFixture.t0,
            finishedAt: MonitoringFixture.t0 + 4)
        #expect(r.status == .failed && r.exitStatus == 69 && r.retries == 3 && r.seconds == 4)
        #expect(r.failure?.code == "unavailable" && r.failure?.operation == "connect")
        #expect(r.errors == ["unavailable": 1])
        #expect(r.failure?.message.contains("hunter22") == false)
        #expect(r.failure?.message.contains("importer:*****@db.example") == true)
        let json = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        #expect(!json.contains("hunter22"))
        #expect(try JSONDecoder().decode(RunReport.self, from: Data(json.utf8)) == r)
    }
}

@Suite struct FailureClassifierTests {
    @Test(arguments: [
        (BEMSCore.ExitStatus.usage, Stage.load, "bad key", "config"),
        (.dataError, .validate, "x", "parse"),
        (.dataError, .normalize, "x", "parse"),
        (.dataError, .dedupe, "x", "dedupe"),
        (.dataError, .load, "chunk a: a reading to insert already exists", "copy"),
        (.dataError, .load, "verify found mismatches", "verify"),
        (.dataError, .refresh, "x", "refresh"),
        (.noInput, .load, "dedupe has no current run", "input"),
        (.unavailable, .load, "lost the database", "connect"),
        (.cantCreate, .load, "locked", "lock"),
        (.ioError, .load, "chunk x fails its SHA-256 check", "checksum"),
        (.ioError, .normalize, "disk full", "io"),
        (.overLimit, .load, "over", "storage"),
        (.noPermission, .load, "superuser", "permission"),
        (.unexpected, .load, "connection failed [08006]: x", "connect"),
        (.unexpected, .load, "boom", "unexpected"),
    ])
    func operationOfAPipelineError(status: BEMSCore.ExitStatus, stage: Stage, text: String, operation: String) {
        let f = FailureClassifier.classify(PipelineError(status, text), stage: stage, exitStatus: status)
        #expect(f.operation == operation)
        #expect(f.code == status.name)
    }

    @Test(arguments: [
        (PostgresError(code: .connectionFailed, message: "refused"), "connect", "connection_failed"),
        (PostgresError(code: .queryFailed, sqlState: "08006", message: "x"), "connect", "sqlstate_08006"),
        (PostgresError(code: .queryFailed, sqlState: "42501", message: "x"), "permission", "sqlstate_42501"),
        (PostgresError(code: .queryFailed, sqlState: "57014", message: "x"), "timeout", "sqlstate_57014"),
        (PostgresError(code: .queryFailed, sqlState: "23505", message: "x"), "constraint", "sqlstate_23505"),
        (PostgresError(code: .copyFailed, sqlState: "22P02", message: "x"), "copy", "sqlstate_22P02"),
        (PostgresError(code: .queryFailed, sqlState: "42P01", message: "x"), "query", "sqlstate_42P01"),
    ])
    func operationOfAPostgresError(error: PostgresError, operation: String, code: String) {
        let f = FailureClassifier.classify(error, stage: .load, exitStatus: .unexpected)
        #expect(f.operation == operation && f.code == code && f.sqlState == error.sqlState)
    }

    @Test func sqlStateInsideAMessage() {
        #expect(FailureClassifier.embeddedSQLState("query failed [40P01]: deadlock") == "40P01")
        #expect(FailureClassifier.embeddedSQLState("[ABCDE] letters only") == nil)
        #expect(FailureClassifier.embeddedSQLState("no state") == nil)
        let f = FailureClassifier.classify(
            PipelineError(.unavailable, "lost it (query failed [57P01]: terminating)"), stage: .load,
            exitStatus: .unavailable)
        #expect(f.sqlState == "57P01")
    }

    @Test func everyExitStatusHasAName() {
        let all: [BEMSCore.ExitStatus] = [
            .ok, .unexpected, .usage, .dataError, .noInput, .unavailable, .cantCreate, .ioError, .overLimit,
            .noPermission,
        ]
        #expect(Set(all.map(\.name)).count == all.count)
        #expect(ExitStatus.overLimit.rawValue == 75)
    }
}

@Suite struct SecretScrubberTests {
    @Test(arguments: [
        "postgresql://bems:hunter22@db.example.com:5432/app?sslmode=require",
        "postgres://bems:hunter22@db/app",
        "host=db user=bems password=hunter22 dbname=app",
        "host=db password='hunter22' dbname=app",
        "PASSWORD = hunter22",
        "https://bems:hunter22@hooks.example.com/x",
        "postgresql://db/app?user=bems&password=hunter22",
    ])
    func masksPasswordsInAnyForm(text: String) {
        let out = SecretScrubber.scrub("failed: \(text) (retrying)")
        #expect(!out.contains("hunter22"), "\(out)")
        #expect(out.contains(SecretScrubber.mask))
    }

    @Test func masksGivenSecretsAndDSNKeys() {
        let out = SecretScrubber.scrub(
            "posting to https://hooks.slack.example/services/T0/B0/tok3n and https://abc123@o1.sentry.example/42",
            secrets: ["https://hooks.slack.example/services/T0/B0/tok3n", "abc"])
        #expect(!out.contains("tok3n") && !out.contains("abc123"))
        #expect(out.contains("https://*****@o1.sentry.example/42"))
    }

    @Test func keepsUserNamesOfDatabaseURIs() {
        #expect(SecretScrubber.scrub("postgresql://bems:pw12@db/app") == "postgresql://bems:*****@db/app")
    }

    @Test func masksRowValuesOnlyWhenAsked() {
        let text =
            #"duplicate key (detail: Key (sensor_id, "timestamp")=(f1_z1_ac1, 2019-03-04 00:00:00+07) already exists.) "#
            + #"Failing row contains (1, f3_z1_light, 4762.4300) line "2019-03-04,1.5""#
        let kept = SecretScrubber.scrub(text)
        #expect(kept.contains("f1_z1_ac1"))
        let masked = SecretScrubber.scrub(text, values: true)
        for value in ["f1_z1_ac1", "4762.4300", "2019-03-04,1.5", "f3_z1_light"] {
            #expect(!masked.contains(value), "\(masked)")
        }
        #expect(masked.contains("=(…)") && masked.contains("Failing row contains (…)"))
    }

    @Test func secretsOfAConnectionString() {
        #expect(SecretScrubber.secrets(ofConninfo: "host=h password=pw99") == ["host=h password=pw99", "pw99"])
        #expect(SecretScrubber.secrets(ofConninfo: "host=h") == ["host=h"])
    }
}

@Suite struct RunLogRecorderTests {
    /// Keeps what it is asked to print.
    final class Printed: LogHandler, @unchecked Sendable {
        private let lock = NSLock()
        private var _lines: [String] = []
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .notice
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lock.withLock { _lines.append("\(event.level) \(event.message)") } }
        var lines: [String] { lock.withLock { _lines } }
    }

    @Test func notesRetriesTakesChunkTimingsFromTheProgressAndPrintsOnlyAtItsLevel() {
        let printed = Printed()
        let progress = StageProgress(stage: "load", mode: .quiet, write: { _ in })
        let sink = RunLogRecorder.Sink(progress: progress)
        var logger = Logger(label: "t", factory: { _ in printed }).recording(into: sink)
        logger[metadataKey: "stage"] = "load"
        #expect(logger.logLevel == .info)
        progress.begin(total: .rows(10))
        progress.recordChunk(seconds: 0.25)
        progress.recordChunk(seconds: 1.5)
        // Log lines are not read for timings any more: the stages record them on the progress.
        logger.info("chunk loaded", metadata: ["chunk": "c.bemc", "seconds": "9.000"])
        logger.info("secondary indexes rebuilt", metadata: ["seconds": "3.0"])
        logger.warning("transient database error, retrying", metadata: ["retry.attempt": "1"])
        #expect(progress.snapshot().activity == .retrying)
        logger.notice("load finished")
        logger.debug("never seen")
        #expect(sink.observations == RunObservations(chunkSeconds: [0.25, 1.5], retries: 1))
        #expect(printed.lines == ["warning transient database error, retrying", "notice load finished"])
        #expect(logger[metadataKey: "stage"] == "load")
        logger.logLevel = .trace
        #expect(printed.logLevel == .trace)
        logger.debug("now seen")
        #expect(printed.lines.last == "debug now seen")
        var handler = RunLogRecorder(inner: printed, sink: sink)
        handler.metadata = ["env": "dev"]
        #expect(handler.metadata == ["env": "dev"])
        handler.metadataProvider = nil
        #expect(handler.metadataProvider == nil)
    }
}

@Suite struct RunHistoryTests {
    @Test func reportsFromFilesAndManifestsNewestLast() throws {
        let dir = TemporaryDirectory()
        let work = WorkDir(root: dir.path)
        let t = MonitoringFixture.t0
        for (i, status) in [RunReport.Status.succeeded, .failed, .succeeded].enumerated() {
            let id = "2026010\(i + 1)T000000Z-000\(i)"
            try AtomicFile.makeDirectory(work.runDirectory(.load, id))
            var r = MonitoringFixture.report(.load, status: status, runID: id, finished: t + Double(i) * 3600)
            r.rowsOut = 10
            r.chunks = ChunkTimings([Double(i + 1)])
            if status == .failed { r.alerts = [Alert(.critical, "import_failed", "load failed")] }
            try AtomicFile.writeJSON(r, to: work.runDirectory(.load, id) + "/" + RunReport.fileName)
        }
        // A run known only by its manifest, and a folder with neither (killed before publishing).
        try AtomicFile.makeDirectory(work.runDirectory(.refresh, "20260101T000000Z-0009"))
        try work.publish(
            MonitoringFixture.manifest(.refresh, runID: "20260101T000000Z-0009", totals: ["aggregateRows": 7]))
        try AtomicFile.makeDirectory(work.runDirectory(.refresh, "20260102T000000Z-0009"))

        #expect(RunHistory.reports(.load, work: work).count == 3)
        let latest = RunHistory.latest(work: work, last: 2)
        #expect(latest.map(\.stage) == [.load, .load, .refresh])
        #expect(latest.map(\.runID).first == "20260102T000000Z-0001")
        let recent = RunHistory.since(t + 1800, work: work)
        #expect(recent.map(\.runID) == ["20260102T000000Z-0001", "20260103T000000Z-0002"])

        let digest = RunDigest(
            reports: RunHistory.since(t - 60, work: work), env: "staging", from: t - 86400, to: t + 86400)
        #expect(digest.runs == 4 && digest.failed == 1)
        let load = try #require(digest.stages.first { $0.stage == .load })
        #expect(load.runs == 3 && load.rowsOut == 30 && load.maxChunkSeconds == 3 && load.lastStatus == .succeeded)
        #expect(digest.text.contains("4 runs, 1 failed"))
        #expect(digest.text.contains("- load: 3 runs (1 failed), 30 rows out"))
        #expect(digest.text.contains("alerts: 1 critical, 0 warnings"))
        #expect(RunDigest(reports: [], env: "dev", from: t, to: t).text.contains("no runs in this period"))

        let row = try #require(latest.last?.tableRow)
        #expect(row.count == RunReport.tableHeader.count)
        #expect(row[0] == "refresh" && row[8] == "7")
        let failedRow = RunHistory.reports(.load, work: work)[1].tableRow
        #expect(failedRow.last == "1c/0w" && failedRow[12] == "2.000")
    }
}
