/// The stored time range of one sensor: the earliest and latest timestamp in `sensor_readings`.
package struct SensorWatermark: Sendable, Equatable {
    /// Earliest stored timestamp (Unix seconds).
    package var min: Int64
    /// Latest stored timestamp (Unix seconds).
    package var max: Int64

    /// Creates a watermark.
    package init(min: Int64, max: Int64) {
        self.min = min
        self.max = max
    }
}

/// The stored readings of some sensors in a time range, sensor by sensor, each sorted by time.
package struct ExistingRows: Sendable {
    /// Per sensor id: timestamps ascending, with their stored value and status (`nil` for NULL or an unknown label).
    package var bySensor: [String: SensorRows] = [:]

    /// One sensor's stored rows.
    package struct SensorRows: Sendable {
        /// Unix seconds, ascending.
        package var timestamps: [Int64] = []
        /// Stored values (×10⁴), `nil` for NULL.
        package var values: [Int64?] = []
        /// Stored statuses, `nil` for NULL or an unknown label.
        package var statuses: [ReadingStatus?] = []
    }

    /// Creates an empty set.
    package init() {}
}

/// Read-only access to the readings already in `sensor_readings`, for the dedupe stage's classification: a
/// connection inside one shared, read-only snapshot of the database.
///
/// ## Incremental strategy: per-sensor watermarks
///
/// One query per run (``watermarks(of:)``) gets, for every sensor of the batch, the earliest and latest stored
/// timestamp. Each bound is a `min`/`max` sub-select on one `sensor_id`, which PostgreSQL answers with one probe of
/// the `(sensor_id, "timestamp")` unique index, so the query costs O(sensors · log n), never a scan.
///
/// A group whose readings of a sensor all lie outside that sensor's `[min, max]` cannot collide with a stored row
/// of that sensor: they are inserts without any lookup. That makes the first load (no watermarks at all) and
/// appending new days (every reading after `max`) cost nothing beyond that one query. Only a group with readings
/// inside some sensor's window issues a lookup (``existing(sensorIDs:from:to:)``): one indexed range query for that
/// group's overlapping sensors and time range, so the database is never read as a whole.
///
/// - Important: The rows are read in one `REPEATABLE READ READ ONLY` snapshot (``SnapshotSession``), shared by every
///   worker connection via `pg_export_snapshot()`, so all groups are classified against the same database state.
///   That classification is valid only until the database changes; the load stage re-checks it.
package final class SnapshotSession {
    /// The connection (inside the snapshot's transaction).
    package let db: PGConnection
    /// The number of range lookups this session issued (``existing(sensorIDs:from:to:)``).
    package private(set) var lookupQueries = 0

    /// Opens the snapshot transaction on `db`.
    ///
    /// - Parameters:
    ///   - db: An idle connection.
    ///   - snapshotID: `nil` to start a new snapshot (the exporting session), or the id another session exported.
    /// - Throws: ``PostgresError``; a snapshot that no longer exists (its exporting session ended) is reported as
    ///   ``PostgresError/Code/connectionLost``, a transient error.
    package init(db: PGConnection, importing snapshotID: String? = nil) throws {
        self.db = db
        try db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if let snapshotID { try Self.importSnapshot(snapshotID, on: db) }
    }

    /// `SET TRANSACTION SNAPSHOT`; "invalid snapshot identifier" (`22023`) means the exporting transaction ended,
    /// which during a dedupe run means its session was lost, so it is reported as a lost connection (transient: the
    /// stage retries with a new snapshot).
    private static func importSnapshot(_ snapshotID: String, on db: PGConnection) throws {
        let sql = "SET TRANSACTION SNAPSHOT \(try db.quoteLiteral(snapshotID))"
        do {
            try db.exec(sql)
        } catch {
            guard error.sqlState == "22023" else { throw error }
            throw PostgresError(
                code: .connectionLost,
                message: "snapshot \(snapshotID) is gone: the session that exported it was lost (\(error.message))")
        }
    }

    deinit {
        if db.isAlive, db.transactionStatus != .idle { _ = try? db.exec("ROLLBACK") }
    }

    /// Exports the snapshot for other sessions and returns its id and the snapshot's time (the transaction's
    /// `now()`, as ISO 8601 UTC and as Unix seconds).
    package func export() throws -> (id: String, takenAt: String, unix: Int64) {
        let row = try db.exec(
            "SELECT pg_export_snapshot(), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
                + " extract(epoch FROM now())::bigint"
        ).rows[0]
        return (row[0] ?? "", row[1] ?? "", row[2].flatMap { Int64($0) } ?? 0)
    }

    /// Whether `sensor_readings` exists (resolved through the connection's `search_path`).
    package func readingsTableExists() throws -> Bool {
        try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [Schema.readingsTable]).scalar() == "t"
    }

    /// The stored time range of every sensor in `sensorIDs` that has rows, in one query of index probes.
    package func watermarks(of sensorIDs: [String]) throws -> [String: SensorWatermark] {
        guard !sensorIDs.isEmpty else { return [:] }
        let result = try db.exec(
            """
            SELECT s,
                   extract(epoch FROM (SELECT min("timestamp") FROM sensor_readings WHERE sensor_id = s))::bigint,
                   extract(epoch FROM (SELECT max("timestamp") FROM sensor_readings WHERE sensor_id = s))::bigint
            FROM unnest($1::text[]) AS s
            """,
            parameters: [Self.textArray(sensorIDs)])
        var marks: [String: SensorWatermark] = [:]
        for r in 0..<result.count {
            guard let id = result.string(row: r, col: 0), let lo = try result.int64(row: r, col: 1),
                let hi = try result.int64(row: r, col: 2)
            else { continue }
            marks[id] = SensorWatermark(min: lo, max: hi)
        }
        return marks
    }

    /// The stored rows of `sensorIDs` with timestamps in `[from, to]` (Unix seconds), values read exactly from their
    /// text form.
    ///
    /// The server returns one row per sensor whose text lists that sensor's rows in time order, one line each:
    /// `<extract(epoch)::bigint> <reading_value::text or N> <n|a|?>` (`?` for a NULL or unknown status). One string
    /// per sensor instead of four per reading keeps the client side to a byte-level scan; the range is still read
    /// through the `(sensor_id, "timestamp")` index.
    ///
    /// - Throws: ``PostgresError`` for database failures or unreadable text.
    package func existing(sensorIDs: [String], from: Int64, to: Int64) throws -> ExistingRows {
        lookupQueries += 1
        let result = try db.exec(
            """
            SELECT sensor_id,
                   string_agg(extract(epoch FROM "timestamp")::bigint::text || ' ' || coalesce(reading_value::text, 'N')
                              || ' ' || CASE status WHEN 'normal' THEN 'n' WHEN 'anomaly' THEN 'a' ELSE '?' END,
                              E'\\n' ORDER BY "timestamp")
            FROM sensor_readings
            WHERE sensor_id = ANY($1::text[]) AND "timestamp" >= to_timestamp($2) AND "timestamp" <= to_timestamp($3)
            GROUP BY sensor_id
            """,
            parameters: [Self.textArray(sensorIDs), String(from), String(to)])
        var rows = ExistingRows()
        for row in result.rows {
            guard let id = row[0], var text = row[1] else { continue }
            let parsed = text.withUTF8 { Self.parseLines(UnsafeRawBufferPointer($0)) }
            guard let parsed else {
                throw PostgresError(code: .unexpectedResult, message: "sensor_readings: unreadable rows of \(id)")
            }
            rows.bySensor[id] = parsed
        }
        return rows
    }

    /// Parses the lines of ``existing(sensorIDs:from:to:)``; `nil` when malformed.
    static func parseLines(_ raw: UnsafeRawBufferPointer) -> ExistingRows.SensorRows? {
        var out = ExistingRows.SensorRows()
        let n = raw.count
        var i = 0
        let space = UInt8(ascii: " ")
        while i < n {
            var negative = false
            if raw[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            var time: Int64 = 0
            var digits = 0
            while i < n, raw[i] &- UInt8(ascii: "0") < 10, digits < 19 {
                time = time &* 10 &+ Int64(raw[i] &- UInt8(ascii: "0"))
                i += 1
                digits += 1
            }
            guard digits > 0, i < n, raw[i] == space else { return nil }
            i += 1
            let start = i
            while i < n, raw[i] != space { i += 1 }
            guard i < n, i > start else { return nil }
            var value: Int64?
            if !(i == start + 1 && raw[start] == UInt8(ascii: "N")) {
                guard let v = try? DecimalParser.parse(raw, from: start, to: i) else { return nil }
                value = v
            }
            i += 1
            guard i < n else { return nil }
            let status: ReadingStatus? =
                switch raw[i] {
                case UInt8(ascii: "n"): .normal
                case UInt8(ascii: "a"): .anomaly
                default: nil
                }
            i += 1
            if i < n {
                guard raw[i] == UInt8(ascii: "\n") else { return nil }
                i += 1
            }
            out.timestamps.append(negative ? -time : time)
            out.values.append(value)
            out.statuses.append(status)
        }
        return out
    }

    /// A PostgreSQL array literal of text elements, every element double-quoted and escaped.
    static func textArray(_ items: [String]) -> String {
        "{"
            + items.map { item in
                "\"" + item.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
            }.joined(separator: ",") + "}"
    }
}
