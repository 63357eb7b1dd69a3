import Foundation
import Logging

/// One difference between what the manifests imply and what the database holds.
package struct VerifyMismatch: Codable, Equatable, Sendable {
    /// `chunk-missing` (no committed ledger row), `chunk-incomplete` (committed pieces leave rows of the chunk
    /// uncovered, or overlap), `chunk-counts` (the ledger's counts, summed over the chunk's pieces, differ from the
    /// manifest), `sensor-day` (the table's count or value sum differs from `sensor_day_stats`) or `aggregates`
    /// (`daily_aggregates.reading_count` of a refreshed sensor-day differs from `sensor_day_stats`).
    package var kind: String
    package var chunk: String?
    package var sensorID: String?
    /// The building day, `YYYY-MM-DD`.
    package var day: String?
    /// Expected and actual, as text (counts, or `count=…, sum=…`).
    package var expected: String
    package var actual: String
}

/// The result of a verify, written as `verify.json` into the load run folder.
package struct VerifyReport: Codable, Equatable, Sendable {
    package var loadRunID: String
    package var dedupeRunID: String?
    package var chunksChecked: Int
    package var sensorDaysChecked: Int
    package var mismatches: [VerifyMismatch]
    package var seconds: Double
    package var passed: Bool { mismatches.isEmpty }

    private enum CodingKeys: String, CodingKey {
        case loadRunID, dedupeRunID, chunksChecked, sensorDaysChecked, mismatches, seconds, passed
    }

    package init(
        loadRunID: String, dedupeRunID: String?, chunksChecked: Int, sensorDaysChecked: Int,
        mismatches: [VerifyMismatch], seconds: Double
    ) {
        self.loadRunID = loadRunID
        self.dedupeRunID = dedupeRunID
        self.chunksChecked = chunksChecked
        self.sensorDaysChecked = sensorDaysChecked
        self.mismatches = mismatches
        self.seconds = seconds
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        loadRunID = try c.decode(String.self, forKey: .loadRunID)
        dedupeRunID = try c.decodeIfPresent(String.self, forKey: .dedupeRunID)
        chunksChecked = try c.decode(Int.self, forKey: .chunksChecked)
        sensorDaysChecked = try c.decode(Int.self, forKey: .sensorDaysChecked)
        mismatches = try c.decode([VerifyMismatch].self, forKey: .mismatches)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(loadRunID, forKey: .loadRunID)
        try c.encodeIfPresent(dedupeRunID, forKey: .dedupeRunID)
        try c.encode(chunksChecked, forKey: .chunksChecked)
        try c.encode(sensorDaysChecked, forKey: .sensorDaysChecked)
        try c.encode(mismatches, forKey: .mismatches)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(passed, forKey: .passed)
    }
}

/// `bems verify`: checks a load run against the database, exactly, reading only the affected ranges.
///
/// - Per chunk of the load's dedupe run: the committed `loaded_chunks` rows with the same name and SHA-256 (in any
///   run; one per piece when the chunk was split after a statement timeout) must cover its rows exactly once, and
///   their row/insert/update counts must add up to the dedupe manifest's.
/// - Per sensor-day the chunks touch: the readings table's `count(*)` and `sum(reading_value)` for that sensor and
///   building day (`AT TIME ZONE` in SQL) must equal `sensor_day_stats`, which the loader keeps from the chunk files
///   (see ``LoadLedger``). The query reads only the chunk's sensors over its days, through the unique index; a run
///   that holds at least half of the table (a first load) is checked instead in one grouped scan of the whole table
///   against every `sensor_day_stats` row, which is cheaper than a range read per chunk.
/// - Per sensor-day checked that no refresh is pending for (not in `dirty_sensor_days`, and no full recompute
///   pending): the `reading_count` of `daily_aggregates`, summed over the sensor-day's rows, must equal
///   `sensor_day_stats` (0 when the sensor-day has no row). Right after a load its sensor-days are pending, so this
///   checks the earlier refreshes; after `bems-refresh`, that one too.
package enum VerifyStage {
    /// What to verify.
    package struct Options: Sendable {
        package var config: PipelineConfig
        package var env: String
        package var database: DatabaseTarget
        package var ledgerSchema = Schema.defaultLedgerSchema
        /// The load run (work-dir run id); default the current one.
        package var runID: String?

        package init(config: PipelineConfig, env: String, database: DatabaseTarget) {
            self.config = config
            self.env = env
            self.database = database
        }
    }

    /// Verifies a load run (default: the current one) and writes `verify.json` into its folder.
    ///
    /// - Throws: ``PipelineError`` 66 when there is no such load run.
    package static func run(_ options: Options, logger: Logger) throws -> VerifyReport {
        let work = WorkDir(root: options.config.workDir)
        let manifest: StageManifest
        if let id = options.runID {
            guard FileManager.default.fileExists(atPath: work.manifestPath(.load, id)) else {
                throw PipelineError.noInput("load run \(id) not found in \(work.stageDirectory(.load))")
            }
            manifest = try work.manifest(.load, id)
        } else {
            guard let current = try work.currentManifest(.load) else {
                throw PipelineError.noInput("load has no current run: run bems-load first")
            }
            manifest = current
        }
        let db = try options.database.connect(logger: logger)
        let ledger = LoadLedger(schema: options.ledgerSchema, timeZone: options.config.timeZone)
        return try verify(loadManifest: manifest, work: work, ledger: ledger, db: db, logger: logger)
    }

    /// Verifies a load run on an open connection and writes `verify.json` into the run folder.
    package static func verify(
        loadManifest: StageManifest, work: WorkDir, ledger: LoadLedger, db: PGConnection, logger: Logger
    ) throws -> VerifyReport {
        let report = try check(
            loadRunID: loadManifest.runID, dedupeRunID: loadManifest.upstreamRunID, work: work, ledger: ledger, db: db)
        try record(report, work: work, logger: logger)
        return report
    }

    /// Writes a report into its load run's folder (`verify.json`, which must exist) and logs the outcome.
    package static func record(_ report: VerifyReport, work: WorkDir, logger: Logger) throws {
        try AtomicFile.writeJSON(report, to: work.runDirectory(.load, report.loadRunID) + "/verify.json")
        if report.passed {
            logger.info(
                "verify passed",
                metadata: ["chunks": "\(report.chunksChecked)", "sensor.days": "\(report.sensorDaysChecked)"])
        } else {
            logger.info(
                "verify found mismatches",
                metadata: ["mismatches": "\(report.mismatches.count)", "run": "\(report.loadRunID)"])
        }
    }

    /// The checks of ``verify(loadManifest:work:ledger:db:logger:)`` without writing or logging the report: a
    /// first load runs them before it publishes its manifest, beside its last index builds.
    ///
    /// - Parameters:
    ///   - loadRunID: The load run (work-dir run id) the report belongs to.
    ///   - dedupeRunID: The dedupe run the load loaded; `nil` checks only the aggregates (nothing).
    static func check(
        loadRunID: String, dedupeRunID: String?, work: WorkDir, ledger: LoadLedger, db: PGConnection
    ) throws -> VerifyReport {
        let started = Date()
        var mismatches: [VerifyMismatch] = []
        var checkedDays = Set<String>()
        var chunksChecked = 0
        if let dedupeID = dedupeRunID {
            let dedupe = try work.manifest(.dedupe, dedupeID)
            let committed = try ledger.committedPieces(
                names: dedupe.chunks.map(\.file), sha256s: dedupe.chunks.map(\.sha256), on: db)
            let q = try ledger.q(db)
            let tz = try db.quoteLiteral(ledger.timeZone)
            var checks: [RunChunk] = []
            var checkRows = 0
            for chunk in dedupe.chunks {
                chunksChecked += 1
                guard let row = committed[LoadLedger.key(name: chunk.file, sha256: chunk.sha256)] else {
                    mismatches.append(
                        VerifyMismatch(
                            kind: "chunk-missing", chunk: chunk.file, expected: "committed", actual: "not in ledger"))
                    continue
                }
                let gaps = row.gaps(rows: chunk.rows)
                if !gaps.isEmpty || row.hasOverlap {
                    mismatches.append(
                        VerifyMismatch(
                            kind: "chunk-incomplete", chunk: chunk.file,
                            expected: "pieces covering rows \(ChunkPieces.describe([0..<chunk.rows])) once",
                            actual: "pieces \(ChunkPieces.describe(row.pieces.map(\.rows)))"
                                + (gaps.isEmpty ? "" : "; missing rows \(ChunkPieces.describe(gaps))")))
                }
                let expected =
                    "rows=\(chunk.rows) inserted=\(chunk.inserts ?? row.inserted) updated=\(chunk.updates ?? row.updated)"
                let actual = "rows=\(row.rowCount) inserted=\(row.inserted) updated=\(row.updated)"
                if expected != actual {
                    mismatches.append(
                        VerifyMismatch(kind: "chunk-counts", chunk: chunk.file, expected: expected, actual: actual))
                }
                guard chunk.rows > 0 else { continue }
                let path = work.runDirectory(.dedupe, dedupeID) + "/" + chunk.file
                let header: ChunkHeader
                do {
                    header = try ChunkReader.readHeader(try ChunkFile.read(path))
                } catch {
                    throw PipelineError.io("chunk \(chunk.file): \(error)")
                }
                let sensors = header.sensors.filter { $0.count > 0 }.map(\.sensorID)
                checks.append((chunk.file, sensors, header.minTimestamp, header.maxTimestamp))
                checkRows += chunk.rows
            }
            // A run that holds at least half of the table (a first load) is checked in one grouped scan of the whole
            // table, cheaper than one index range read per sensor-day at that size (about break-even at half the
            // table, RESULTS.md); the result is a superset of the run's sensor-days.
            let tableRows =
                Int(
                    try db.exec(
                        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($1)",
                        parameters: [Schema.readingsTable]
                    ).scalar() ?? "0") ?? 0
            if !checks.isEmpty {
                // The chunks' day ranges: the per-sensor-day check reads them, the grouped scan only to attribute a
                // mismatch to its chunk.
                var rangesRead: [(String, String)]?
                let result: PGResult
                if checks.count > 1, tableRows > 0, checkRows * 2 >= tableRows {
                    let zone = try dayZone(tz: tz, statsTable: "\(q).sensor_day_stats", db: db)
                    // Readings outside the statistics' days (none after a first load) take the named zone. The
                    // bounds stay out of the WHERE clause: a range there could make the planner, before the table's
                    // first ANALYZE, read the whole table through the floor BRIN instead of a parallel scan.
                    let day =
                        zone == tz
                        ? "r.\"timestamp\" AT TIME ZONE \(tz)"
                        : """
                        CASE WHEN r."timestamp" >= (SELECT lo FROM b) AND r."timestamp" < (SELECT hi FROM b)
                             THEN r."timestamp" AT TIME ZONE \(zone) ELSE r."timestamp" AT TIME ZONE \(tz) END
                        """
                    result = try db.exec(
                        """
                        WITH e AS (
                            SELECT s.sensor_id, s.day, s.reading_count AS c, s.value_sum AS v
                            FROM \(q).sensor_day_stats s
                        ), b AS (\(dayBoundsSQL(tz: tz, statsTable: "\(q).sensor_day_stats"))
                        ), a AS (
                            SELECT r.sensor_id, (\(day))::date AS day,
                                   count(*) AS c, coalesce(sum(r.reading_value), 0) AS v
                            FROM \(Schema.readingsTable) r
                            GROUP BY 1, 2
                        )
                        SELECT e.sensor_id, e.day::text, e.c, e.v::text, coalesce(a.c, 0), coalesce(a.v, 0)::text,
                               e.c = coalesce(a.c, 0) AND e.v = coalesce(a.v, 0)
                        FROM e LEFT JOIN a ON a.sensor_id = e.sensor_id AND a.day = e.day
                        """)
                } else {
                    // Every sensor-day of the run, each read by one range scan of the (sensor_id, "timestamp")
                    // key: the LATERAL keeps the planner from a whole-table scan, which it chose for a chunk's
                    // sensors over a day range once the table held 123 M readings (33 s a chunk).
                    let ranges = try dayRanges(checks, tz: tz, db: db)
                    var sensors: [String] = []
                    var firsts: [String] = []
                    var lasts: [String] = []
                    for (i, check) in checks.enumerated() {
                        for sensor in check.sensors {
                            sensors.append(sensor)
                            firsts.append(ranges[i].0)
                            lasts.append(ranges[i].1)
                        }
                    }
                    rangesRead = ranges
                    result = try db.exec(
                        """
                        WITH k AS (
                            SELECT DISTINCT u.sensor_id, g.day::date AS day
                            FROM unnest($1::varchar[], $2::date[], $3::date[]) AS u(sensor_id, d0, d1)
                            CROSS JOIN LATERAL generate_series(u.d0, u.d1, interval '1 day') AS g(day)
                        )
                        SELECT k.sensor_id, k.day::text, s.reading_count, s.value_sum::text, a.c, a.v::text,
                               s.reading_count = a.c AND s.value_sum = a.v
                        FROM k
                        JOIN \(q).sensor_day_stats s ON s.sensor_id = k.sensor_id AND s.day = k.day
                        CROSS JOIN LATERAL (
                            SELECT count(*) AS c, coalesce(sum(r.reading_value), 0) AS v
                            FROM \(Schema.readingsTable) r
                            WHERE r.sensor_id = k.sensor_id
                              AND r."timestamp" >= (k.day::timestamp AT TIME ZONE \(tz))
                              AND r."timestamp" < ((k.day + 1)::timestamp AT TIME ZONE \(tz))
                        ) a
                        """,
                        parameters: [pgArray(sensors), pgArray(firsts), pgArray(lasts)])
                }
                var bad: [Int] = []
                for r in 0..<result.count {
                    let sensor = result.string(row: r, col: 0) ?? ""
                    checkedDays.insert(sensor + "|" + (result.string(row: r, col: 1) ?? ""))
                    if try result.bool(row: r, col: 6) == false { bad.append(r) }
                }
                if !bad.isEmpty {
                    mismatches += sensorDayMismatches(
                        result, rows: bad, checks: checks,
                        dayRanges: try rangesRead ?? dayRanges(checks, tz: tz, db: db))
                }
            }
        }
        mismatches += try aggregateMismatches(sensorDays: checkedDays, ledger: ledger, db: db)
        return VerifyReport(
            loadRunID: loadRunID, dedupeRunID: dedupeRunID, chunksChecked: chunksChecked,
            sensorDaysChecked: checkedDays.count, mismatches: mismatches, seconds: Date().timeIntervalSince(started))
    }

    /// The zone expression the grouped scan takes a reading's day in: the zone's UTC offset as an interval literal
    /// (`INTERVAL '25200 seconds'`) when the zone keeps that one offset from the first to the end of the last day of
    /// `sensor_day_stats`, else the named zone `tz` itself. Both give the same day to every reading in that range
    /// (the scan takes the named zone outside it); the interval is computed by PostgreSQL from the named zone, in
    /// SQL.
    ///
    /// Written for speed, measured: `AT TIME ZONE 'Asia/Bangkok'` looks the name up on every row, and the grouped
    /// scan of 123 M readings took 24.4 s with it and 11.1 s with the interval (1 parallel worker, RESULTS.md).
    /// The offset is compared at every hour of the range and at its end; an offset change lasts far longer than an
    /// hour, so one inside the range is seen.
    static func dayZone(tz: String, statsTable: String, db: PGConnection) throws -> String {
        let offset = try db.exec(
            """
            WITH b AS (\(dayBoundsSQL(tz: tz, statsTable: statsTable))
            ), o AS (
                SELECT b.lo, b.hi, (b.lo AT TIME ZONE \(tz)) - (b.lo AT TIME ZONE 'UTC') AS v FROM b
            )
            SELECT extract(epoch FROM o.v)::int FROM o
            WHERE o.lo IS NOT NULL AND o.lo < o.hi AND o.hi < o.lo + interval '50 years'
              AND (o.hi AT TIME ZONE \(tz)) = (o.hi AT TIME ZONE o.v)
              AND NOT EXISTS (
                  SELECT 1 FROM generate_series(o.lo, o.hi, interval '1 hour') g(t)
                  WHERE (g.t AT TIME ZONE \(tz)) <> (g.t AT TIME ZONE o.v))
            """
        ).rows.first?[0] ?? nil
        guard let offset, let seconds = Int(offset) else { return tz }
        return "INTERVAL '\(seconds) seconds'"
    }

    /// The first instant (`lo`) and the end (`hi`) of the days in `statsTable`, in the zone `tz`.
    private static func dayBoundsSQL(tz: String, statsTable: String) -> String {
        """
        SELECT (min(day)::timestamp AT TIME ZONE \(tz)) AS lo, ((max(day) + 1)::timestamp AT TIME ZONE \(tz)) AS hi
        FROM \(statsTable)
        """
    }

    /// A chunk of the checked run: its file, the sensors it holds readings of, its first and last timestamp.
    typealias RunChunk = (file: String, sensors: [String], minTS: Int64, maxTS: Int64)

    /// The first and last Bangkok day (`YYYY-MM-DD`) of each chunk's timestamps, computed in SQL.
    static func dayRanges(
        _ checks: [RunChunk], tz: String, db: PGConnection
    ) throws -> [(String, String)] {
        let bounds = checks.flatMap { [$0.minTS, $0.maxTS] }
        let days = try db.exec(
            "SELECT (to_timestamp(x) AT TIME ZONE \(tz))::date::text FROM unnest($1::int8[]) WITH ORDINALITY"
                + " u(x, n) ORDER BY n", parameters: [pgArray(bounds)])
        return (0..<checks.count).map {
            (days.string(row: 2 * $0, col: 0) ?? "", days.string(row: 2 * $0 + 1, col: 0) ?? "")
        }
    }

    /// The `sensor-day` mismatches of the given result rows (sensor, day, expected count and sum, actual count and
    /// sum), each attributed to the first chunk of the run holding that sensor on that day, if any.
    static func sensorDayMismatches(
        _ result: PGResult, rows: [Int], checks: [RunChunk], dayRanges: [(String, String)]
    ) -> [VerifyMismatch] {
        rows.map { r in
            let sensor = result.string(row: r, col: 0) ?? ""
            let day = result.string(row: r, col: 1) ?? ""
            let chunk = checks.indices.first {
                checks[$0].sensors.contains(sensor) && dayRanges[$0].0 <= day && day <= dayRanges[$0].1
            }.map { checks[$0].file }
            return VerifyMismatch(
                kind: "sensor-day", chunk: chunk, sensorID: sensor, day: day,
                expected: "count=\(result.string(row: r, col: 2) ?? "") sum=\(result.string(row: r, col: 3) ?? "")",
                actual: "count=\(result.string(row: r, col: 4) ?? "") sum=\(result.string(row: r, col: 5) ?? "")")
        }
    }

    /// `daily_aggregates` against `sensor_day_stats` for the given sensor-days (`sensor|YYYY-MM-DD`) whose refresh
    /// is not pending; none while a full recompute is pending (the table may be stale as a whole).
    static func aggregateMismatches(
        sensorDays: Set<String>, ledger: LoadLedger, db: PGConnection
    ) throws -> [VerifyMismatch] {
        guard !sensorDays.isEmpty else { return [] }
        let q = try ledger.q(db)
        let pairs = sensorDays.sorted().map { $0.split(separator: "|", maxSplits: 1).map(String.init) }
        let result = try db.exec(
            """
            WITH k AS (
                SELECT u.sensor_id, u.day FROM unnest($1::varchar[], $2::date[]) AS u(sensor_id, day)
                WHERE NOT EXISTS (SELECT 1 FROM \(q).\(Schema.dirtyTable) d
                                  WHERE d.sensor_id = u.sensor_id AND d.day = u.day)
                  AND NOT EXISTS (SELECT 1 FROM \(q).\(Schema.dirtyTable) d WHERE d.day = '-infinity')
            )
            SELECT k.sensor_id, k.day::text, s.reading_count, coalesce(sum(a.reading_count), 0)
            FROM k
            JOIN \(q).sensor_day_stats s ON s.sensor_id = k.sensor_id AND s.day = k.day
            LEFT JOIN \(Schema.aggregatesTable) a ON a.sensor_id = k.sensor_id AND a.date = k.day
            GROUP BY 1, 2, 3
            HAVING s.reading_count <> coalesce(sum(a.reading_count), 0)
            ORDER BY 1, 2
            """,
            parameters: [pgArray(pairs.map { $0.first ?? "" }), pgArray(pairs.map { $0.last ?? "" })])
        return (0..<result.count).map { r in
            VerifyMismatch(
                kind: "aggregates", chunk: nil, sensorID: result.string(row: r, col: 0),
                day: result.string(row: r, col: 1),
                expected: "reading_count=\(result.string(row: r, col: 2) ?? "")",
                actual: "reading_count=\(result.string(row: r, col: 3) ?? "")")
        }
    }
}
