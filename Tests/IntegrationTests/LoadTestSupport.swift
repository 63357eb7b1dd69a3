import Foundation
import Logging
import Testing

@testable import BEMSCore

/// A work directory plus a database schema for load tests, and a Swift model of what the table should hold.
///
/// The ledger lives in the test's own schema, so tests never share ledger rows or advisory locks.
final class LoadFixture {
    struct Key: Hashable, Comparable {
        var sensor: String
        var ts: Int64
        static func < (a: Key, b: Key) -> Bool { (a.sensor, a.ts) < (b.sensor, b.ts) }
    }
    struct Reading {
        var sensor: String
        var ts: Int64
        var value: Int64
        var status: ReadingStatus
    }

    /// The test's own connection (a `var`: a test that restarts the server reconnects).
    var db: PGConnection
    let schema: String
    let workRoot: String
    let config: PipelineConfig
    let target: DatabaseTarget
    /// What the database should contain after every published dedupe run is loaded.
    var model: [Key: (value: Int64, status: ReadingStatus)] = [:]
    var logger: Logger {
        var l = Logger(label: "test.load")
        l.logLevel = .warning
        return l
    }

    init(db: PGConnection, schema: String, url: String? = TestDatabase.url) throws {
        self.db = db
        self.schema = schema
        workRoot = NSTemporaryDirectory() + "bems-load-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var config = PipelineConfig()
        config.workDir = workRoot
        self.config = config
        let url = url ?? ""
        let conninfo =
            url.contains("://")
            ? url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D" + schema
            : url + " options='-csearch_path=\(schema)'"
        target = DatabaseTarget(env: "dev", conninfo: conninfo, variable: "BEMS_TEST_DATABASE_URL")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: workRoot)
    }

    var work: WorkDir { WorkDir(root: workRoot) }

    func loadOptions() -> LoadStage.Options {
        var o = LoadStage.Options(config: config, env: "dev", database: target)
        o.ledgerSchema = schema
        return o
    }

    func load() async throws -> LoadStage.Result {
        try await LoadStage.run(loadOptions(), logger: logger)
    }

    func rollback(_ run: String? = nil) throws -> LoadRollback.Result {
        var o = LoadRollback.Options(config: config, env: "dev", database: target)
        o.ledgerSchema = schema
        o.run = run
        return try LoadRollback.run(o, logger: logger)
    }

    func verify() throws -> VerifyReport {
        var o = VerifyStage.Options(config: config, env: "dev", database: target)
        o.ledgerSchema = schema
        return try VerifyStage.run(o, logger: logger)
    }

    /// Generated readings: `sensors` per floor, one reading a minute from `start` for `minutes`.
    static func readings(
        floors: ClosedRange<Int> = 1...2, sensorsPerFloor: Int = 3, start: Int64 = 1_546_304_400, minutes: Int,
        seed: Int64 = 0
    ) -> [Reading] {
        let kinds = ["z1_ac1", "z1_light", "z1_plug", "z2_ac2", "z1_s1_temp", "z1_s1_rh", "z1_s1_lux", "z2_ac3"]
        var out: [Reading] = []
        for f in floors {
            let names = (0..<sensorsPerFloor).map { $0 < kinds.count ? kinds[$0] : "z\($0 % 5 + 1)_ac\($0)" }
            for k in names {
                let sensor = "f\(f)_\(k)"
                for m in 0..<minutes {
                    let ts = start + Int64(m) * 60
                    // Exact scaled values with all four decimals used, some negative-free spikes as anomalies.
                    let v = (Int64(m) &* 7919 &+ Int64(f) &* 104_729 &+ seed &* 31) % 9_999_999 + Int64(k.count)
                    out.append(Reading(sensor: sensor, ts: ts, value: v, status: v % 97 == 0 ? .anomaly : .normal))
                }
            }
        }
        return out
    }

    /// Builds and publishes a dedupe run from `readings`, deciding insert/update/skip against ``model`` (the state
    /// after the previous runs), one chunk per floor and UTC day. Updates ``model``.
    @discardableResult
    func publishDedupe(_ readings: [Reading]) throws -> StageManifest {
        let work = self.work
        let runID = try work.createRun(.dedupe)
        let dir = work.runDirectory(.dedupe, runID)
        try AtomicFile.makeDirectory(dir + "/chunks")
        struct Group: Hashable {
            var floor: Int
            var day: Int64
        }
        var groups: [Group: [Reading]] = [:]
        for r in readings {
            let floor = SensorColumn.describe(sensorID: r.sensor)!.floor
            groups[Group(floor: floor, day: r.ts / 86_400), default: []].append(r)
        }
        var records: [ChunkRecord] = []
        for (g, rows) in groups.sorted(by: { ($0.key.floor, $0.key.day) < ($1.key.floor, $1.key.day) }) {
            var data = ChunkData()
            var inserts = 0
            var updates = 0
            var skips = 0
            var sensorIndex: [String: UInt32] = [:]
            for r in rows {
                let key = Key(sensor: r.sensor, ts: r.ts)
                let action: ChunkAction
                let previous = model[key]
                if let previous {
                    if previous.value == r.value && previous.status == r.status {
                        skips += 1
                        continue
                    }
                    action = .update
                    updates += 1
                } else {
                    action = .insert
                    inserts += 1
                }
                let s: UInt32
                if let known = sensorIndex[r.sensor] {
                    s = known
                } else {
                    s = data.addSensor(r.sensor)
                    sensorIndex[r.sensor] = s
                }
                data.append(
                    sensorIndex: s, timestamp: r.ts, value: r.value, status: r.status, action: action,
                    previousValue: previous?.value, previousStatus: previous?.status)
                model[key] = (r.value, r.status)
            }
            guard data.count > 0 else { continue }
            let day = TimestampParser.formatDay(Int(g.day))
            let file = "chunks/f\(g.floor)-\(day)-s0-0.bemc"
            let bytes = try ChunkWriter.encode(data)
            try ChunkFile.write(bytes, to: dir + "/" + file)
            records.append(
                ChunkRecord(
                    file: file, sha256: Digest.sha256Hex(bytes), bytes: bytes.count, rows: data.count,
                    minTimestamp: data.timestamps.min()!, maxTimestamp: data.timestamps.max()!, floor: g.floor,
                    day: day, source: "test", inserts: inserts, updates: updates, skips: skips))
        }
        let manifest = StageManifest(
            stage: .dedupe, runID: runID, previousRunID: work.currentRunID(.dedupe), createdAt: "test",
            bemsVersion: BEMS.version, env: "dev", fingerprint: runID, upstreamRunID: nil, inputs: [],
            chunks: records, passed: true, totals: [:], seconds: 0)
        try work.publish(manifest)
        return manifest
    }

    /// The table content as sorted (key, value text, status) — every value compared as exact text.
    func tableContent() throws -> [String] {
        try db.exec(
            """
            SELECT sensor_id || '|' || extract(epoch FROM "timestamp")::bigint || '|' || reading_value::text || '|'
                   || status || '|' || floor_number || '|' || equipment_type || '|' || unit
            FROM sensor_readings ORDER BY sensor_id, "timestamp"
            """
        ).rows.map { $0[0] ?? "NULL" }
    }

    /// The content the model implies, in the same form as ``tableContent()``.
    func expectedContent() -> [String] {
        model.keys.sorted().map { k in
            let v = model[k]!
            let (floor, type) = SensorColumn.describe(sensorID: k.sensor)!
            return
                "\(k.sensor)|\(k.ts)|\(ScaledDecimal.format(v.value))|\(v.status.label)|\(floor)|\(type.rawValue)|\(type.unit)"
        }
    }

    /// An order-independent checksum of the table content.
    func checksum() throws -> String {
        try db.exec(
            """
            SELECT coalesce(md5(string_agg(sensor_id || '|' || "timestamp"::text || '|' || coalesce(reading_value::text, 'NULL')
                   || '|' || coalesce(status, 'NULL'), ',' ORDER BY sensor_id, "timestamp")), 'empty')
            FROM sensor_readings
            """
        ).scalar() ?? ""
    }

    /// The number of secondary indexes on `sensor_readings` (the schema has one, the floor BRIN) that exist: every
    /// index but the two keys.
    func secondaryIndexCount() throws -> Int {
        try count(
            """
            SELECT count(*) FROM pg_index i
            WHERE i.indrelid = to_regclass('sensor_readings')
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """)
    }

    /// Whether `sensor_readings` has its `(sensor_id, "timestamp")` unique constraint.
    /// Whether `sensor_readings` has its primary key (which a first load suspends with the unique key).
    func primaryKeyExists() throws -> Bool {
        try count(
            """
            SELECT count(*) FROM pg_constraint
            WHERE conrelid = to_regclass('sensor_readings') AND contype = 'p' AND conname = 'sensor_readings_pkey'
            """) == 1
    }

    func uniqueKeyExists() throws -> Bool {
        try count(
            """
            SELECT count(*) FROM pg_constraint
            WHERE conrelid = to_regclass('sensor_readings') AND conname = 'sensor_readings_sensor_id_timestamp_key'
            """) == 1
    }

    func count(_ sql: String) throws -> Int {
        Int(try db.exec(sql).scalarInt64() ?? -1)
    }
}

/// Runs `body` with a fresh fixture in its own schema.
func withLoadFixture<R>(_ body: (LoadFixture) async throws -> R) async throws -> R {
    let db = try TestDatabase.connect()
    let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    try db.exec("CREATE SCHEMA \(schema)")
    defer { _ = try? db.exec("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
    try db.exec("SET search_path TO \(schema)")
    let fixture = try LoadFixture(db: db, schema: schema)
    return try await body(fixture)
}

/// Runs tests that time a real load against a fault (kill, terminate, restart) one at a time across suites: on a
/// 2-core machine two of them at once slow each other down enough that a fault lands after the load finished.
actor ExclusiveLoadTests {
    static let shared = ExclusiveLoadTests()
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` once no other exclusive test runs.
    func run<R: Sendable>(_ body: @Sendable () async throws -> R) async throws -> R {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        }
        busy = true
        defer {
            if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}
