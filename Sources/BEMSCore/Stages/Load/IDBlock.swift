/// A block of consecutive `sensor_readings.id` values reserved for a whole load run in one short transaction, so
/// that chunks take their ids without calling `nextval` once per row.
///
/// `ALTER SEQUENCE … INCREMENT BY n` blocks every concurrent `nextval` until its transaction ends (PostgreSQL
/// documents this), so between it and the reset to 1 nobody else takes a value. With the sequence's `last_value`
/// `L` read under that lock, one `nextval` returns `L + n` and `L + 1 … L + n` belong to this run alone; a sequence
/// never called returns its start `S` first, so it takes a second `nextval` (`S + n`) and the block is `S ..< S + n`.
/// Others continue after the block. Ids a run does not use (update rows, a killed run) are gaps, as after a
/// rollback.
enum IDBlock {
    /// Reserves `count` ids and returns the first, or `nil` (nothing changed) when that is not possible: no count,
    /// no sequence behind the column, a sequence this role does not own, or an increment other than 1.
    static func reserve(count: Int, on db: PGConnection) throws -> Int64? {
        guard count > 0,
            let sequence = try db.exec(
                "SELECT pg_get_serial_sequence($1, 'id')", parameters: [Schema.readingsTable]
            ).scalar(),
            try db.exec(
                """
                SELECT pg_has_role(current_user, c.relowner, 'USAGE') AND s.seqincrement = 1
                FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid WHERE c.oid = $1::regclass
                """, parameters: [sequence]
            ).scalar() == "t"
        else { return nil }
        return try db.transaction { () throws -> Int64 in
            // pg_get_serial_sequence returns the name already quoted where needed.
            try db.exec("ALTER SEQUENCE \(sequence) INCREMENT BY \(count)")
            let state = try db.exec("SELECT last_value, is_called FROM \(sequence)")
            guard let last = Int64(state.string(row: 0, col: 0) ?? "") else {
                throw PipelineError.data("could not read the state of \(sequence)")
            }
            func next() throws -> Int64? {
                Int64(try db.exec("SELECT nextval($1::regclass)", parameters: [sequence]).scalar() ?? "")
            }
            let first: Int64
            if state.string(row: 0, col: 1) == "t" {
                guard let v = try next(), v == last + Int64(count) else {
                    throw PipelineError.data("could not reserve \(count) ids from \(sequence)")
                }
                first = last + 1
            } else {
                guard let v = try next(), v == last, let w = try next(), w == v + Int64(count) else {
                    throw PipelineError.data("could not reserve \(count) ids from \(sequence)")
                }
                first = v
            }
            try db.exec("ALTER SEQUENCE \(sequence) INCREMENT BY 1")
            return first
        }
    }

    /// The `int8multirange` text of the ids `base + i` for the rows `i` in `rows` where `include` holds, ranges merged.
    static func multirange(base: Int64, rows: Range<Int>, include: (Int) -> Bool) -> String {
        var parts: [String] = []
        var start: Int?
        for i in rows {
            if include(i) {
                if start == nil { start = i }
            } else if let s = start {
                parts.append("[\(base + Int64(s)),\(base + Int64(i)))")
                start = nil
            }
        }
        if let s = start { parts.append("[\(base + Int64(s)),\(base + Int64(rows.upperBound)))") }
        return "{" + parts.joined(separator: ",") + "}"
    }
}
