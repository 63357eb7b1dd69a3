import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// Dedupe's database reads survive a real fault: its sessions are terminated (`pg_terminate_backend`) in the middle
/// of the classification, and the stage retries the whole classification on a new snapshot.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct DedupeRetryTests {
    static let day0: Int64 = 1_551_632_400  // 2019-03-04 00:00 Bangkok

    /// A normalize run of `floors` × 3 days × 8 sensors of minutes, with conflicting duplicates in one group, and the
    /// same readings stored in the database except that every 7th value differs (an update) and every 11th row is
    /// missing (an insert inside the stored range), so every group needs a lookup.
    static func prepare(work: WorkDir, db: PGConnection, schema: String, floors: ClosedRange<Int>) throws {
        try Schema(ledgerSchema: schema).setup(on: db)
        var chunks: [StageFixture.Chunk] = []
        var stored: [(String, Int64, Int64?, ReadingStatus)] = []
        for floor in floors {
            for day in 0..<3 {
                var rows: [(String, Int64, Int64, ReadingStatus)] = []
                for sensor in [
                    "z1_ac1", "z1_light", "z1_plug", "z2_ac2", "z1_s1_temp", "z1_s1_rh", "z1_s1_lux", "z2_ac3",
                ] {
                    for minute in 0..<1440 {
                        let t = day0 + Int64(day * 86_400 + minute * 60)
                        let value = Int64((minute * 7919 + floor * 104_729 + day * 31) % 999_999)
                        rows.append(("f\(floor)_\(sensor)", t, value, .normal))
                        if minute % 11 != 0 {
                            stored.append(("f\(floor)_\(sensor)", t, minute % 7 == 0 ? value + 1 : value, .normal))
                        }
                    }
                }
                let label = TimestampParser.formatDay(Int((day0 + 7 * 3600) / 86_400) + day)
                chunks.append(.init(floor: floor, day: label, sourceIndex: 0, rows: rows))
                if floor == floors.lowerBound, day == 0 {
                    // A second source with 100 conflicting values: the later source wins, each conflict reported.
                    chunks.append(
                        .init(
                            floor: floor, day: label, sourceIndex: 1,
                            rows: rows.prefix(100).map { ($0.0, $0.1, $0.2 + 3, $0.3) }))
                }
            }
        }
        try StageFixture.publishNormalizeRun(work: work, sources: ["a.csv", "b.csv"], chunks: chunks)
        try StageFixture.copyReadings(stored, into: db)
    }

    /// Everything a dedupe run decided, independent of its run id and snapshot time.
    static func outcome(_ result: DedupeStage.Result) throws -> [String] {
        let r = result.report
        let conflicts = try String(contentsOfFile: result.runDirectory + "/conflicts.jsonl", encoding: .utf8)
        return [
            "readings=\(r.readingsIn) duplicates=\(r.duplicatesDropped) conflicts=\(r.conflicts) inserts=\(r.inserts)"
                + " updates=\(r.updates) skips=\(r.skips) lookups=\(r.lookupQueries) groups=\(r.groups)",
            "chunks="
                + result.manifest.chunks.map { "\($0.file):\($0.rows):\($0.inserts ?? -1):\($0.updates ?? -1)" }
                .joined(separator: ","),
            conflicts,
        ] + (try StageFixture.decisions(result)).map { "\($0.key) \($0.value)" }.sorted()
    }

    @Test func terminatedSessionsMidClassificationAreRetriedWithTheSameOutcome() async throws {
        try await ExclusiveLoadTests.shared.run { try await terminatedMidClassification() }
    }

    func terminatedMidClassification() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            let work = WorkDir(root: dir.path + "/work")
            try Self.prepare(work: work, db: db, schema: schema, floors: 1...7)
            var options = DedupeStage.Options(config: StageFixture.config(dir.path), env: "dev")
            options.parallelism = 2
            options.force = true
            options.config.environments["dev"]?.retry = RetryPolicy(
                baseDelay: 0.2, maxAttempts: 4, budget: 20, jitter: .none)
            let application = "bems_dedupe_fault_" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            options.environment = [
                "BEMS_DEV_DATABASE_URL": try StageFixture.conninfo(schema: schema) + "&application_name=" + application
            ]

            let undisturbed = try await DedupeStage.run(options, logger: StageFixture.logger)
            #expect(undisturbed.classificationAttempts == 1)
            #expect(undisturbed.report.updates > 0 && undisturbed.report.inserts > 0 && undisturbed.report.skips > 0)
            #expect(undisturbed.report.conflicts == 100)
            #expect(undisturbed.lookupQueries == undisturbed.report.groups)

            // Terminate every session of the stage once a worker has joined the snapshot (the exporting session and
            // at least one worker open: the classification is under way).
            let killer = SessionKiller(application: application, minimumSessions: 2)
            killer.start()
            let capture = LogCapture()
            let t0 = Date()
            let retried = try await DedupeStage.run(options, logger: capture.logger())
            let seconds = Date().timeIntervalSince(t0)
            killer.stop()
            #expect(killer.failure == nil)
            try #require(killer.killed >= 2, "the classification ended before its sessions were terminated")
            #expect(retried.classificationAttempts == 2)
            #expect(retried.manifest.totals["classificationAttempts"] == 2)
            let retries = capture.entries("transient database error, retrying")
            #expect(retries.count == 1)
            #expect(retries.first?["retry.what"] == "dedupe classification")
            #expect(try Self.outcome(retried) == Self.outcome(undisturbed))
            // Only the successful attempt's files are in the published run.
            let files = try FileManager.default.contentsOfDirectory(atPath: retried.runDirectory + "/chunks")
            #expect(
                files.sorted() == retried.manifest.chunks.map { String($0.file.dropFirst("chunks/".count)) }.sorted())
            #expect(!FileManager.default.fileExists(atPath: retried.runDirectory + "/conflict-parts"))
            #expect(work.currentRunID(.dedupe) == retried.manifest.runID)
            Logger(label: "test.dedupe").notice(
                "dedupe sessions terminated mid-classification",
                metadata: [
                    "killed": "\(killer.killed)", "attempts": "\(retried.classificationAttempts)",
                    "seconds": "\(String(format: "%.2f", seconds))", "groups": "\(retried.report.groups)",
                    "readings": "\(retried.report.readingsIn)",
                ])
        }
    }

    @Test func aClassificationThatStaysUnavailableFailsWith69AndPublishesNothing() async throws {
        let dir = StageTempDirectory()
        try await TestDatabase.withSchemaAsync { db, schema in
            let work = WorkDir(root: dir.path + "/work")
            try Self.prepare(work: work, db: db, schema: schema, floors: 1...1)
            var options = DedupeStage.Options(config: StageFixture.config(dir.path), env: "dev")
            options.config.environments["dev"]?.retry = RetryPolicy(
                baseDelay: 0.05, maxAttempts: 2, budget: 5, jitter: .none)
            // Port 1 on localhost refuses: a transient failure that never ends.
            options.environment = ["BEMS_DEV_DATABASE_URL": "host=127.0.0.1 port=1 connect_timeout=2"]
            let capture = LogCapture()
            let error = await #expect(throws: PipelineError.self) {
                try await DedupeStage.run(options, logger: capture.logger())
            }
            #expect(error?.exitStatus == .unavailable)
            #expect(error?.message.contains("cannot connect to the dev database (BEMS_DEV_DATABASE_URL)") == true)
            #expect(capture.entries("transient database error, retrying").count == 1)
            #expect(capture.entries("transient database error, giving up").count == 1)
            #expect(work.currentRunID(.dedupe) == nil)
            #expect(work.runIDs(.dedupe).isEmpty)
        }
    }

    @Test func aSnapshotWhoseExportingSessionEndedIsATransientError() throws {
        let id: String
        do {
            let exporter = try SnapshotSession(db: try TestDatabase.connect())
            id = try exporter.export().id
        }  // the exporting transaction ends here, and its snapshot with it
        let error = #expect(throws: PostgresError.self) {
            try SnapshotSession(db: try TestDatabase.connect(), importing: id)
        }
        #expect(error?.code == .connectionLost)
        #expect(error?.isTransient == true)
        #expect(error?.message.contains("the session that exported it was lost") == true)
    }

    @Test func stageSessionsAreNamedUnlessTheConnectionStringNamesThem() throws {
        guard let url = TestDatabase.url else { throw TestDatabase.MissingURL() }
        var target = DatabaseTarget(env: "dev", conninfo: url, variable: "BEMS_TEST_DATABASE_URL")
        target.applicationName = "bems-dedupe"
        #expect(try target.open().exec("SHOW application_name").scalar() == "bems-dedupe")
        target.conninfo = url + (url.contains("?") ? "&" : "?") + "application_name=mine"
        #expect(try target.open().exec("SHOW application_name").scalar() == "mine")
        target.applicationName = nil
        target.conninfo = url
        #expect(try target.open().exec("SHOW application_name").scalar() == "")
    }
}

/// Terminates, from its own thread, every backend of one application name once at least `minimumSessions` of them
/// are open, once.
final class SessionKiller: @unchecked Sendable {
    // @unchecked: the mutable fields are read and written under `lock`.
    private let lock = NSLock()
    private var _killed = 0
    private var _stopped = false
    private var _failure: String?
    private let done = DispatchSemaphore(value: 0)
    let application: String
    let minimumSessions: Int

    init(application: String, minimumSessions: Int) {
        self.application = application
        self.minimumSessions = minimumSessions
    }

    var killed: Int { lock.withLock { _killed } }
    var failure: String? { lock.withLock { _failure } }

    func start() {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            do {
                let db = try TestDatabase.connect()
                while lock.withLock({ !_stopped && _killed == 0 }) {
                    let open =
                        try db.exec(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            parameters: [application]
                        ).scalarInt64() ?? 0
                    var n: Int64 = 0
                    if Int(open) >= minimumSessions {
                        n =
                            try db.exec(
                                """
                                SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                                WHERE application_name = $1 AND pid <> pg_backend_pid()
                                """, parameters: [application]
                            ).scalarInt64() ?? 0
                    }
                    if n > 0 { lock.withLock { _killed = Int(n) } }
                    usleep(2000)
                }
            } catch {
                lock.withLock { _failure = "\(error)" }
            }
        }
    }

    func stop() {
        lock.withLock { _stopped = true }
        done.wait()
    }
}
