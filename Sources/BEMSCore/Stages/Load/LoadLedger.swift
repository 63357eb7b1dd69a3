import Foundation

/// The load stage's view of the ledger schema (`bems` by default): runs, committed chunks, replaced readings, and the
/// per-sensor-day statistics that ``VerifyStage`` compares with the readings table.
///
/// ## `sensor_day_stats` (additive ledger table, created by ``ensureTables(on:)``)
///
/// `(sensor_id, day, reading_count, value_sum)` where `day` is the building's calendar day
/// (`("timestamp" AT TIME ZONE <tz>)::date`, the zone is an SQL literal, never a session setting), `reading_count`
/// is `count(*)` and `value_sum` is `sum(reading_value)` (NULL values count as rows, not in the sum).
///
/// - A row is created the first time a load touches the sensor-day, from the readings table itself *after* the
///   chunk's changes (so it includes rows that existed before the pipeline).
/// - Afterwards every chunk adds what its *chunk file* says it changed (+1 and +value per insert, +(new − previous)
///   per update) in the same transaction as the rows; rollback applies the inverse.
///
/// So the table holds what the manifests imply the readings should sum to; any difference with the readings table
/// (a lost or altered row, a bad encoding) is a verify mismatch.
package struct LoadLedger: Sendable {
    /// The unquoted ledger schema name.
    package var schema: String
    /// The building's IANA time zone, which defines a "day".
    package var timeZone: String

    /// Describes the ledger.
    package init(schema: String = Schema.defaultLedgerSchema, timeZone: String = Schema.defaultTimeZone) {
        self.schema = schema
        self.timeZone = timeZone
    }

    /// The advisory lock key that serializes loads and rollbacks on one ledger.
    package var lockKey: String { "bems.load:" + schema }

    /// Creates the additive ledger table `sensor_day_stats` when missing (idempotent). Run after ``Schema/setup(on:)``.
    package func ensureTables(on db: PGConnection) throws {
        let s = try db.quoteIdentifier(schema)
        try db.exec(
            """
            CREATE TABLE IF NOT EXISTS \(s).sensor_day_stats (
                sensor_id     VARCHAR(50) NOT NULL,
                day           DATE NOT NULL,
                reading_count BIGINT NOT NULL,
                value_sum     NUMERIC NOT NULL,
                PRIMARY KEY (sensor_id, day)
            );
            COMMENT ON TABLE \(s).sensor_day_stats IS
                'Expected count and value sum per sensor and building day, kept by bems load; checked by bems verify.';
            """)
    }

    /// Takes the session-level advisory lock that keeps two loads (or a load and a rollback) apart.
    ///
    /// Waits up to `wait` seconds: right after a loader was killed, its backend may need a moment to notice the
    /// closed connection and release the lock.
    ///
    /// - Throws: ``PipelineError`` 73 when another session still holds it.
    package func lock(on db: PGConnection, wait: Double = 5) throws {
        let deadline = Date().addingTimeInterval(wait)
        var got = try db.exec("SELECT pg_try_advisory_lock(hashtext($1))", parameters: [lockKey]).scalar()
        while got != "t", Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            got = try db.exec("SELECT pg_try_advisory_lock(hashtext($1))", parameters: [lockKey]).scalar()
        }
        guard got == "t" else {
            throw PipelineError(
                .cantCreate, "another bems load or load rollback is running on this database (advisory lock held)")
        }
    }

    /// Releases the lock taken by ``lock(on:)``.
    package func unlock(on db: PGConnection) {
        _ = try? db.exec("SELECT pg_advisory_unlock(hashtext($1))", parameters: [lockKey])
    }

    /// The quoted schema.
    func q(_ db: PGConnection) throws -> String { try db.quoteIdentifier(schema) }

    // MARK: - Runs

    /// Inserts a `runs` row with status `running` and returns its id.
    package func startRun(stage: String, env: String, details: [String: String], on db: PGConnection) throws -> Int64 {
        let json =
            "{"
            + details.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            .joined(separator: ",") + "}"
        let id = try db.exec(
            "INSERT INTO \(try q(db)).runs (stage, env, details) VALUES ($1, $2, $3::jsonb) RETURNING id",
            parameters: [stage, env, json]
        ).scalarInt64()
        guard let id else { throw PostgresError(code: .unexpectedResult, message: "no run id returned") }
        return id
    }

    /// Sets the final status of a run.
    package func finishRun(_ id: Int64, status: String, on db: PGConnection) throws {
        try db.exec(
            "UPDATE \(try q(db)).runs SET status = $2, finished_at = now() WHERE id = $1",
            parameters: [String(id), status])
    }

    /// A committed piece of a chunk: its `loaded_chunks` row.
    package struct CommittedPiece: Sendable, Equatable {
        package var runID: Int64
        /// The piece's first row in the chunk file.
        package var start: Int
        /// The piece's rows.
        package var rowCount: Int
        package var inserted: Int
        package var updated: Int

        /// The rows of the chunk file the piece covers.
        package var rows: Range<Int> { start..<(start + rowCount) }

        package init(runID: Int64, start: Int, rowCount: Int, inserted: Int, updated: Int) {
            self.runID = runID
            self.start = start
            self.rowCount = rowCount
            self.inserted = inserted
            self.updated = updated
        }
    }

    /// What the ledger holds committed for one chunk file: its pieces, in row order.
    package struct ChunkCoverage: Sendable, Equatable {
        package var pieces: [CommittedPiece]

        package init(pieces: [CommittedPiece]) {
            self.pieces = pieces.sorted { $0.start < $1.start }
        }

        package var rowCount: Int { pieces.reduce(0) { $0 + $1.rowCount } }
        package var inserted: Int { pieces.reduce(0) { $0 + $1.inserted } }
        package var updated: Int { pieces.reduce(0) { $0 + $1.updated } }

        /// The rows of a chunk of `rows` rows that no committed piece covers.
        package func gaps(rows: Int) -> [Range<Int>] { ChunkPieces.gaps(rows: rows, covered: pieces.map(\.rows)) }

        /// Whether two committed pieces share rows (never expected: it would mean rows loaded twice).
        package var hasOverlap: Bool { ChunkPieces.overlap(pieces.map(\.rows)) }

        /// The committed piece exactly covering `rows`, if any.
        package func piece(covering rows: Range<Int>) -> CommittedPiece? {
            pieces.first { $0.rows == rows }
        }
    }

    /// The key of a chunk file in the maps below: `name|sha256`.
    package static func key(name: String, sha256: String) -> String { name + "|" + sha256 }

    /// The committed pieces of chunk files, keyed by ``key(name:sha256:)``; files without any are absent.
    package func committedPieces(
        names: [String], sha256s: [String], on db: PGConnection
    ) throws -> [String: ChunkCoverage] {
        guard !names.isEmpty else { return [:] }
        let result = try db.exec(
            """
            SELECT c.chunk_name, c.sha256, c.run_id, c.piece_start, c.row_count, c.inserted, c.updated
            FROM \(try q(db)).loaded_chunks c
            JOIN unnest($1::text[], $2::text[]) AS k(name, sha) ON c.chunk_name = k.name AND c.sha256 = k.sha
            WHERE c.status = 'committed'
            """,
            parameters: [pgArray(names), pgArray(sha256s)])
        var pieces: [String: [CommittedPiece]] = [:]
        for r in 0..<result.count {
            let key = Self.key(name: result.string(row: r, col: 0) ?? "", sha256: result.string(row: r, col: 1) ?? "")
            pieces[key, default: []].append(
                CommittedPiece(
                    runID: try result.int64(row: r, col: 2) ?? 0, start: try result.int(row: r, col: 3) ?? 0,
                    rowCount: try result.int(row: r, col: 4) ?? 0, inserted: try result.int(row: r, col: 5) ?? 0,
                    updated: try result.int(row: r, col: 6) ?? 0))
        }
        return pieces.mapValues(ChunkCoverage.init(pieces:))
    }
}

// MARK: - SQL text helpers

/// A PostgreSQL array literal of text values, for a `$n::text[]` parameter.
func pgArray(_ values: [String]) -> String {
    var out = "{"
    for (i, v) in values.enumerated() {
        if i > 0 { out += "," }
        out += "\""
        for ch in v.unicodeScalars {
            if ch == "\"" || ch == "\\" { out += "\\" }
            out.unicodeScalars.append(ch)
        }
        out += "\""
    }
    return out + "}"
}

/// A PostgreSQL array literal of integers, for a `$n::int8[]` parameter.
func pgArray(_ values: [Int64]) -> String {
    "{" + values.map(String.init).joined(separator: ",") + "}"
}

/// A JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if ch.value < 0x20 {
                out += String(format: "\\u%04x", ch.value)
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return out + "\""
}
