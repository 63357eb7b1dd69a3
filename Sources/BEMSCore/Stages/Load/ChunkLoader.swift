import Foundation
import Logging

/// Loads one dedupe chunk, or one piece of it (a row range, see ``ChunkPieces``), into `sensor_readings` in one
/// transaction, together with its ledger rows.
///
/// Steps, all inside one `BEGIN … COMMIT`:
/// 1. Inserts: binary `COPY sensor_readings … FROM STDIN` straight into the table (no staging, no per-row INSERT).
///    A unique violation (`23505`) means someone stored one of these keys since dedupe ran.
/// 2. Inserted ids: read back through the `(sensor_id, "timestamp")` unique index, restricted to the chunk's inserted
///    sensors and time range and to rows created by this transaction (`xmin = pg_current_xact_id()::xid`), folded
///    into an `int8multirange` with `range_agg`. The count must equal the chunk's insert count. This is an index
///    range scan over one floor-day, and it stays correct when other sessions take ids from the same sequence
///    concurrently (the ids need not be contiguous).
/// 3. The `loaded_chunks` row of the piece (so `replaced_readings` can reference it).
/// 4. Updates: binary COPY into a temporary staging table, one `UPDATE … FROM` guarded by the previous value and
///    status dedupe saw; the affected count must equal the chunk's update count. The previous values go to
///    `replaced_readings`.
/// 5. `sensor_day_stats` (see ``LoadLedger``): deltas computed from the chunk file in 15-minute buckets (every time
///    zone offset is a multiple of 15 minutes), mapped to building days in SQL with `AT TIME ZONE`; the same
///    sensor-days go to `dirty_sensor_days` for the refresh (``markDirty(sensors:days:q:on:)``).
///
/// Steps 2 and 4 run in that order because an updated row also gets this transaction's `xmin`.
struct ChunkLoader {
    let db: PGConnection
    let ledger: LoadLedger
    let runID: Int64
    let logger: Logger
    private var sensorFields: [String: SensorFields] = [:]
    /// The sequence behind `sensor_readings.id` (`pg_get_serial_sequence`), from which inserts take their ids
    /// before the COPY; `nil` when the column has none (the ids are then read back after the COPY).
    let idSequence: String?
    /// The table held no readings when this load run started (first load): a sensor-day missing from
    /// `sensor_day_stats` then holds only this run's readings, so its statistics come from the chunk alone instead of
    /// being read back from the table.
    var startedEmpty = false
    /// Bangkok (building) day of each 15-minute bucket seen so far (`bucket * 900` seconds → `YYYY-MM-DD`).
    private var bucketDays: [Int64: String] = [:]
    /// Rate limits (`environments.<env>.rateLimit`): taken per COPY buffer, rows and bytes, before it is sent.
    var limits = LoadRateLimits()
    /// Counts the bytes sent, for the progress line and the bandwidth figures.
    var progress: StageProgress?

    /// Before a COPY buffer of `rows` rows goes out: waits for the rate limits (when set), then counts the buffer
    /// as sent (``StageProgress/transfer(rows:bytes:)``).
    func throttle(rows: inout Int, encoder: borrowing BinaryCopyEncoder, force: Bool = false) {
        guard force || encoder.count >= encoder.flushThreshold else { return }
        if rows > 0 { limits.rows?.acquire(Double(rows)) }
        if encoder.count > 0 { limits.bytes?.acquire(Double(encoder.count)) }
        progress?.transfer(rows: rows, bytes: encoder.count)
        rows = 0
    }

    static let stagingTable = "bems_load_updates"

    init(db: PGConnection, ledger: LoadLedger, runID: Int64, logger: Logger) throws {
        self.db = db
        self.ledger = ledger
        self.runID = runID
        self.logger = logger
        idSequence = try db.exec(
            "SELECT pg_get_serial_sequence($1, 'id')", parameters: [Schema.readingsTable]
        ).scalar()
        try db.exec(
            """
            CREATE TEMP TABLE IF NOT EXISTS \(Self.stagingTable) (
                sensor_id       VARCHAR(50) NOT NULL,
                "timestamp"     TIMESTAMPTZ NOT NULL,
                value           NUMERIC(10,4),
                status          VARCHAR(20),
                previous_value  NUMERIC(10,4),
                previous_status VARCHAR(20)
            ) ON COMMIT DELETE ROWS
            """)
    }

    /// What a chunk or piece changed.
    struct Outcome {
        var inserted = 0
        var updated = 0
        /// Seconds spent per step: `copy`, `ids`, `updates`, `stats`, `commit`.
        var steps: [String: Double] = [:]

        /// The sum of two outcomes (the halves of a split piece).
        static func + (a: Outcome, b: Outcome) -> Outcome {
            Outcome(
                inserted: a.inserted + b.inserted, updated: a.updated + b.updated,
                steps: a.steps.merging(b.steps, uniquingKeysWith: +))
        }
    }

    /// Loads rows `rows` of a decoded chunk as one piece (`0..<data.count` is the whole chunk).
    ///
    /// - Throws: ``PipelineError`` 65 when the database changed since dedupe (a unique violation on insert, or an
    ///   update whose previous value no longer matches); ``PostgresError`` for other database failures (`57014` when
    ///   a statement hit the statement timeout). The piece's transaction is rolled back in every case.
    /// - Parameter idBase: The id of the chunk's row 0 in a block reserved for the run (``IDBlock``): row `i` inserts
    ///   with id `idBase + i`. Without it the ids are taken from the sequence per piece.
    mutating func load(
        _ data: ChunkData, rows: Range<Int>, name: String, sha256: String, idBase: Int64? = nil
    ) throws -> Outcome {
        let n = rows.count
        let actions = data.actions
        var insertCount = 0
        var updateCount = 0
        for i in rows {
            if (actions?[i] ?? .insert) == .insert { insertCount += 1 } else { updateCount += 1 }
        }
        var fields: [SensorFields] = []
        for id in data.sensorIDs {
            if let cached = sensorFields[id] {
                fields.append(cached)
            } else {
                guard let f = SensorFields(sensorID: id) else {
                    throw PipelineError.data("chunk \(name): unknown sensor id \(id)")
                }
                sensorFields[id] = f
                fields.append(f)
            }
        }
        let q = try ledger.q(db)
        let tz = try db.quoteLiteral(ledger.timeZone)
        let changed = "the database changed since bems-dedupe ran"

        var steps: [String: Double] = [:]
        var mark = Date()
        func lap(_ step: String) {
            let now = Date()
            steps[step, default: 0] += now.timeIntervalSince(mark)
            mark = now
        }
        var outcome = try db.transaction { () throws -> Outcome in
            // 1. Inserts.
            var insertedIDs = "{}"
            if insertCount > 0 {
                // The ids come from the table's sequence before the COPY, in one statement (as many as the
                // COPY's column default would take), so the ledger knows them without reading the rows back.
                var ids: [Range<Int64>] = []
                if let idBase {
                    insertedIDs = IDBlock.multirange(base: idBase, rows: rows) { (actions?[$0] ?? .insert) == .insert }
                    ids = try Self.parseMultirange(insertedIDs)
                } else if let idSequence {
                    insertedIDs =
                        try db.exec(
                            """
                            WITH s AS (SELECT nextval($1::regclass) AS v FROM generate_series(1, $2::int))
                            SELECT CASE WHEN max(v) - min(v) + 1 = count(*)
                                        THEN int8multirange(int8range(min(v), max(v) + 1))::text
                                        ELSE (SELECT range_agg(int8range(v, v + 1))::text FROM s) END
                            FROM s
                            """,
                            parameters: [idSequence, String(insertCount)]
                        ).scalar() ?? "{}"
                    ids = try Self.parseMultirange(insertedIDs)
                    guard ids.reduce(0, { $0 + $1.count }) == insertCount else {
                        throw PipelineError.data(
                            "chunk \(name): took \(insertCount) ids from \(idSequence) but got \(insertedIDs)")
                    }
                    lap("ids")
                }
                var encoder = BinaryCopyEncoder()
                let explicitIDs = idBase != nil || idSequence != nil
                var copy = try db.copyIn(
                    !explicitIDs
                        ? BinaryCopyEncoder.copyReadingsSQL(table: Schema.readingsTable)
                        : BinaryCopyEncoder.copyReadingsWithIDSQL(table: Schema.readingsTable))
                encoder.appendHeader()
                var sensorsWithInserts = Set<UInt32>()
                var pendingRows = 0
                var minTS = Int64.max
                var maxTS = Int64.min
                var range = 0
                var nextID = ids.first?.lowerBound ?? 0
                for i in rows where (actions?[i] ?? .insert) == .insert {
                    let s = data.sensorIndexes[i]
                    let t = data.timestamps[i]
                    if explicitIDs {
                        if nextID == ids[range].upperBound {
                            range += 1
                            nextID = ids[range].lowerBound
                        }
                        encoder.appendReading(
                            id: nextID, unixSeconds: t, value: data.values[i], status: data.statuses[i],
                            sensor: fields[Int(s)])
                        nextID += 1
                    } else {
                        sensorsWithInserts.insert(s)
                        minTS = min(minTS, t)
                        maxTS = max(maxTS, t)
                        encoder.appendReading(
                            unixSeconds: t, value: data.values[i], status: data.statuses[i], sensor: fields[Int(s)])
                    }
                    pendingRows += 1
                    throttle(rows: &pendingRows, encoder: encoder)
                    try encoder.flushIfNeeded(to: &copy)
                }
                encoder.appendTrailer()
                throttle(rows: &pendingRows, encoder: encoder, force: true)
                try encoder.flush(to: &copy)
                let copied: Int
                do {
                    copied = try copy.finish()
                } catch let error as PostgresError where error.sqlState == "23505" {
                    logger.debug(
                        "unique violation", metadata: ["chunk": "\(name)", "pg.detail": "\(error.detail ?? "")"])
                    throw PipelineError.data(
                        "chunk \(name): a reading to insert already exists (unique violation 23505): \(changed); "
                            + "rerun bems-dedupe, then bems-load")
                }
                lap("copy")
                if explicitIDs {
                    // COPY counts the rows it stored: a trigger or rule that drops rows shows here.
                    guard copied == insertCount else {
                        throw PipelineError.data(
                            "chunk \(name): inserted \(insertCount) readings but COPY stored \(copied) (a trigger or "
                                + "rule on \(Schema.readingsTable)?)")
                    }
                } else {
                    // 2. Without a sequence: the ids of the rows this transaction inserted, read back.
                    let sensors = sensorsWithInserts.sorted().map { data.sensorIDs[Int($0)] }
                    let r = try db.exec(
                        """
                        SELECT count(*), coalesce(range_agg(int8range(id, id + 1)), '{}'::int8multirange)::text
                        FROM \(Schema.readingsTable)
                        WHERE sensor_id = ANY($1::varchar[])
                          AND "timestamp" BETWEEN to_timestamp($2::bigint) AND to_timestamp($3::bigint)
                          AND xmin = pg_current_xact_id()::xid
                        """,
                        parameters: [pgArray(sensors), String(minTS), String(maxTS)])
                    let found = try r.int(row: 0, col: 0) ?? 0
                    guard found == insertCount else {
                        throw PipelineError.data(
                            "chunk \(name): inserted \(insertCount) readings but found \(found) (a trigger or rule on "
                                + "\(Schema.readingsTable)?)")
                    }
                    insertedIDs = r.string(row: 0, col: 1) ?? "{}"
                    lap("ids")
                }
            }

            // 3. Ledger row.
            let times = data.timestamps[rows]
            try db.exec(
                """
                INSERT INTO \(q).loaded_chunks
                    (run_id, chunk_name, sha256, piece_start, row_count, inserted, updated, min_ts, max_ts,
                     inserted_ids)
                VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint), to_timestamp($9::bigint),
                        $10::int8multirange)
                """,
                parameters: [
                    String(runID), name, sha256, String(rows.lowerBound), String(n), String(insertCount),
                    String(updateCount), times.min().map { String($0) }, times.max().map { String($0) }, insertedIDs,
                ])

            lap("ledger")

            // 4. Updates.
            if updateCount > 0 {
                guard let previousValues = data.previousValues, let previousStatuses = data.previousStatuses else {
                    throw PipelineError.data("chunk \(name): update rows without previous values")
                }
                let idFields = data.sensorIDs.map { EncodedField.text($0) }
                let statusFields = ReadingStatus.allCases.map { EncodedField.text($0.label) }
                var encoder = BinaryCopyEncoder()
                var copy = try db.copyIn(
                    "COPY \(Self.stagingTable) (sensor_id, \"timestamp\", value, status, previous_value, previous_status)"
                        + " FROM STDIN (FORMAT binary)")
                encoder.appendHeader()
                var pendingRows = 0
                for i in rows where actions?[i] == .update {
                    encoder.appendTupleHeader(fieldCount: 6)
                    encoder.append(idFields[Int(data.sensorIndexes[i])])
                    encoder.appendTimestamptz(unixSeconds: data.timestamps[i])
                    encoder.appendNumeric(scaled: data.values[i])
                    encoder.append(statusFields[Int(data.statuses[i].rawValue)])
                    if let p = previousValues[i] { encoder.appendNumeric(scaled: p) } else { encoder.appendNull() }
                    if let p = previousStatuses[i] {
                        encoder.append(statusFields[Int(p.rawValue)])
                    } else {
                        encoder.appendNull()
                    }
                    pendingRows += 1
                    throttle(rows: &pendingRows, encoder: encoder)
                    try encoder.flushIfNeeded(to: &copy)
                }
                encoder.appendTrailer()
                throttle(rows: &pendingRows, encoder: encoder, force: true)
                try encoder.flush(to: &copy)
                try copy.finish()
                let updated =
                    try db.exec(
                        """
                        UPDATE \(Schema.readingsTable) r SET reading_value = s.value, status = s.status
                        FROM \(Self.stagingTable) s
                        WHERE r.sensor_id = s.sensor_id AND r."timestamp" = s."timestamp"
                          AND r.reading_value IS NOT DISTINCT FROM s.previous_value
                          AND r.status IS NOT DISTINCT FROM s.previous_status
                        """
                    ).affectedRows ?? 0
                guard updated == updateCount else {
                    throw PipelineError.data(
                        "chunk \(name): \(updateCount - updated) of \(updateCount) readings to update no longer have "
                            + "the value dedupe saw: \(changed); rerun bems-dedupe, then bems-load")
                }
                try db.exec(
                    """
                    INSERT INTO \(q).replaced_readings
                        (run_id, chunk_name, piece_start, sensor_id, "timestamp", previous_value, previous_status)
                    SELECT $1, $2, $3, sensor_id, "timestamp", previous_value, previous_status
                    FROM \(Self.stagingTable)
                    """,
                    parameters: [String(runID), name, String(rows.lowerBound)])
                lap("updates")
            }

            // 5. Expected per-sensor-day statistics.
            try applyStats(data, rows: rows, tz: tz, q: q)
            lap("stats")
            return Outcome(inserted: insertCount, updated: updateCount)
        }
        lap("commit")
        outcome.steps = steps
        return outcome
    }

    /// Adds the chunk's count and value-sum deltas to `sensor_day_stats`, creating missing sensor-days from the table.
    /// Concurrent workers may touch the same sensor-day (chunks that straddle a day): a stats row created by another
    /// transaction meanwhile is detected by ON CONFLICT, which then adds this chunk's delta to it.
    ///
    /// The deltas are summed here per sensor and building day: rows are grouped by 15-minute bucket (every time zone
    /// offset is a multiple of 15 minutes, so a bucket lies in one local day), the buckets' days come from the server
    /// (`AT TIME ZONE`, cached per loader), and the statement gets one row per sensor-day. On a first load
    /// (``startedEmpty``) a new sensor-day's statistics are the deltas themselves; otherwise they are read from the
    /// table, which may hold readings bems did not load.
    private mutating func applyStats(_ data: ChunkData, rows: Range<Int>, tz: String, q: String) throws {
        struct Key: Hashable {
            var sensor: UInt32
            var bucket: Int64
        }
        var deltas: [Key: (count: Int64, sum: Int64)] = [:]
        // Chunks are in (sensor, timestamp) order: accumulate runs of one key, touch the dictionary once per run.
        var current: Key?
        var run: (count: Int64, sum: Int64) = (0, 0)
        func close() {
            if let current {
                let d = deltas[current] ?? (0, 0)
                deltas[current] = (d.count + run.count, d.sum + run.sum)
            }
        }
        for i in rows {
            let t = data.timestamps[i]
            let key = Key(sensor: data.sensorIndexes[i], bucket: t >= 0 ? t / 900 : (t - 899) / 900)
            if key != current {
                close()
                current = key
                run = (0, 0)
            }
            if (data.actions?[i] ?? .insert) == .insert {
                run.count += 1
                run.sum += data.values[i]
            } else {
                run.sum += data.values[i] - (data.previousValues?[i] ?? 0)
            }
        }
        close()
        guard !deltas.isEmpty else { return }
        let missing = Set(deltas.keys.map(\.bucket)).filter { bucketDays[$0] == nil }.sorted()
        if !missing.isEmpty {
            let r = try db.exec(
                "SELECT (to_timestamp(b * 900) AT TIME ZONE \(tz))::date::text FROM unnest($1::int8[]) WITH ORDINALITY u(b, n) ORDER BY n",
                parameters: [pgArray(missing)])
            guard r.count == missing.count else { throw PipelineError.data("day lookup returned \(r.count) rows") }
            for (n, bucket) in missing.enumerated() { bucketDays[bucket] = r.string(row: n, col: 0) ?? "" }
        }
        struct DayKey: Hashable {
            var sensor: UInt32
            var day: String
        }
        var perDay: [DayKey: (count: Int64, sum: Int64)] = [:]
        for (k, v) in deltas {
            let key = DayKey(sensor: k.sensor, day: bucketDays[k.bucket] ?? "")
            let d = perDay[key] ?? (0, 0)
            perDay[key] = (d.count + v.count, d.sum + v.sum)
        }
        var sensors: [String] = []
        var days: [String] = []
        var counts: [Int64] = []
        var sums: [Int64] = []
        for (k, v) in perDay.sorted(by: { ($0.key.sensor, $0.key.day) < ($1.key.sensor, $1.key.day) }) {
            sensors.append(data.sensorIDs[Int(k.sensor)])
            days.append(k.day)
            counts.append(v.count)
            sums.append(v.sum)
        }
        let fresh =
            startedEmpty
            ? "SELECT d.c AS c, d.v AS v"
            : """
            SELECT count(*) AS c, coalesce(sum(r.reading_value), 0) AS v
                FROM \(Schema.readingsTable) r
                WHERE r.sensor_id = d.sensor_id
                  AND r."timestamp" >= (d.day::timestamp AT TIME ZONE \(tz))
                  AND r."timestamp" < ((d.day + 1)::timestamp AT TIME ZONE \(tz))
            """
        try db.exec(
            """
            WITH d AS (
                SELECT u.sensor_id, u.day, u.c, u.v::numeric * 0.0001 AS v
                FROM unnest($1::varchar[], $2::date[], $3::int8[], $4::int8[]) AS u(sensor_id, day, c, v)
            ), upd AS (
                UPDATE \(q).sensor_day_stats s
                SET reading_count = s.reading_count + d.c, value_sum = s.value_sum + d.v
                FROM d WHERE s.sensor_id = d.sensor_id AND s.day = d.day
                RETURNING s.sensor_id, s.day
            )
            INSERT INTO \(q).sensor_day_stats (sensor_id, day, reading_count, value_sum)
            SELECT d.sensor_id, d.day, a.c, a.v
            FROM d
            CROSS JOIN LATERAL (\(fresh)) a
            WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.sensor_id = d.sensor_id AND upd.day = d.day)
            ORDER BY d.sensor_id, d.day
            ON CONFLICT (sensor_id, day) DO UPDATE
                SET reading_count = \(q).sensor_day_stats.reading_count + (SELECT d.c FROM d
                        WHERE d.sensor_id = excluded.sensor_id AND d.day = excluded.day),
                    value_sum = \(q).sensor_day_stats.value_sum + (SELECT d.v FROM d
                        WHERE d.sensor_id = excluded.sensor_id AND d.day = excluded.day)
            """,
            parameters: [pgArray(sensors), pgArray(days), pgArray(counts), pgArray(sums)])
        try Self.markDirty(sensors: sensors, days: days, q: q, on: db)
    }

    /// Records sensor-days for the next refresh of `daily_aggregates` (`<ledger>.dirty_sensor_days`), in the caller's
    /// transaction. A pair already recorded is locked instead (`DO UPDATE … WHERE false` changes nothing but locks
    /// it), so a refresh that wants to take it waits until this transaction commits and then sees its readings;
    /// pairs go in key order, the order the refresh locks them in.
    static func markDirty(sensors: [String], days: [String], q: String, on db: PGConnection) throws {
        guard !sensors.isEmpty else { return }
        try db.exec(
            """
            INSERT INTO \(q).\(Schema.dirtyTable) AS t (sensor_id, day)
            SELECT u.sensor_id, u.day FROM unnest($1::varchar[], $2::date[]) AS u(sensor_id, day)
            ORDER BY 1, 2
            ON CONFLICT (sensor_id, day) DO UPDATE SET day = excluded.day WHERE false
            """,
            parameters: [pgArray(sensors), pgArray(days)])
    }

    /// Parses an `int8multirange` in PostgreSQL's output form (`{[1,5),[9,12)}`, `{}`) into half-open ranges.
    ///
    /// - Throws: ``PipelineError`` 65 for any other text.
    static func parseMultirange(_ text: String) throws -> [Range<Int64>] {
        let bad = PipelineError.data("not an int8multirange: \(text.prefix(80))")
        guard text.hasPrefix("{"), text.hasSuffix("}") else { throw bad }
        let body = text.dropFirst().dropLast()
        guard !body.isEmpty else { return [] }
        var result: [Range<Int64>] = []
        for part in body.split(separator: ")", omittingEmptySubsequences: true) {
            var p = Substring(part)
            if p.hasPrefix(",") { p = p.dropFirst() }
            guard p.hasPrefix("[") else { throw bad }
            let bounds = p.dropFirst().split(separator: ",", omittingEmptySubsequences: false)
            guard bounds.count == 2, let lo = Int64(bounds[0]), let hi = Int64(bounds[1]), lo < hi else { throw bad }
            result.append(lo..<hi)
        }
        return result
    }
}
