import Testing

@testable import BEMSCore

@Suite(
    .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason),
    .timeLimit(.minutes(2))
)
struct BinaryCopyTests {
    /// Scaled values: 0, ±0.0001, ±1, ±9999.9999, ±10000, ±999999.9999, 4762.43, 123.4500.
    static let numericEdgeValues: [Int64] = [
        0, 1, -1, 10_000, -10_000, 99_999_999, -99_999_999, 100_000_000, -100_000_000, 9_999_999_999,
        -9_999_999_999, 47_624_300, 1_234_500,
    ]

    /// Loads rows into a fresh `sensor_readings` through `copyIn`.
    private func load(
        _ db: PGConnection,
        _ rows: [(unixSeconds: Int64, value: Int64?, status: ReadingStatus, sensor: String)],
        flushThreshold: Int = BinaryCopyEncoder.defaultFlushThreshold
    ) throws -> Int {
        var encoder = BinaryCopyEncoder(flushThreshold: flushThreshold)
        var copy = try db.copyIn(BinaryCopyEncoder.copyReadingsSQL(table: "sensor_readings"))
        encoder.appendHeader()
        for row in rows {
            let fields = try #require(SensorFields(sensorID: row.sensor))
            encoder.appendReading(unixSeconds: row.unixSeconds, value: row.value, status: row.status, sensor: fields)
            try encoder.flushIfNeeded(to: &copy)
        }
        encoder.appendTrailer()
        try encoder.flush(to: &copy)
        return try copy.finish()
    }

    @Test func numericEdgeValuesRoundTripExactly() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            let rows = Self.numericEdgeValues.enumerated().map { i, v in
                (
                    unixSeconds: Int64(1_546_304_400 + i * 60), value: Optional(v), status: ReadingStatus.normal,
                    sensor: "f2_z1_ac1"
                )
            }
            #expect(try load(db, rows) == rows.count)
            let result = try db.exec(
                "SELECT reading_value::text FROM sensor_readings ORDER BY \"timestamp\""
            )
            #expect(result.rows.map { $0[0] } == Self.numericEdgeValues.map { ScaledDecimal.format($0) })
            #expect(
                try db.exec("SELECT reading_value::text FROM sensor_readings WHERE reading_value = 4762.43").scalar()
                    == "4762.4300"
            )
        }
    }

    /// The encoder's NUMERIC bytes equal the server's own `numeric_send` output (its canonical form).
    @Test(arguments: numericEdgeValues + [Int64.max, Int64.min, 1_000_000_010_000, 5_000])
    func numericBytesMatchServerEncoding(scaled: Int64) throws {
        let db = try TestDatabase.connect()
        var encoder = BinaryCopyEncoder()
        encoder.appendNumeric(scaled: scaled)
        let ours = encoder.bytes.dropFirst(4).map { String(format2: $0) }.joined()
        let type = scaled.magnitude <= ScaledDecimal.maxMagnitude.magnitude ? "numeric(10,4)" : "numeric"
        let server = try db.exec(
            "SELECT encode(numeric_send(round($1::numeric, 4)::\(type)), 'hex')",
            parameters: [ScaledDecimal.format(scaled)]
        ).scalar()
        #expect(server == ours)
    }

    @Test func largeNumericsRoundTripThroughUnconstrainedNumeric() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE n (v numeric)")
            let values: [Int64] = [Int64.max, Int64.min, 1_000_000_010_000, -10_000_000_000_000]
            var encoder = BinaryCopyEncoder()
            var copy = try db.copyIn("COPY n (v) FROM STDIN (FORMAT binary)")
            encoder.appendHeader()
            for v in values {
                encoder.appendTupleHeader(fieldCount: 1)
                encoder.appendNumeric(scaled: v)
            }
            encoder.appendTrailer()
            try encoder.flush(to: &copy)
            #expect(try copy.finish() == values.count)
            let text = try db.exec("SELECT v::text FROM n").rows.map { $0[0] }
            #expect(text == values.map { ScaledDecimal.format($0) })
        }
    }

    @Test func bangkokEpochLoadsAsUTCInstantWhateverTheSessionTimeZone() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("SET TimeZone = 'America/New_York'")
            try db.exec(Schema.createReadingsTableSQL)
            // 2019-01-01 08:00:00 in Bangkok (UTC+7) = 2019-01-01 01:00:00 UTC.
            _ = try load(db, [(1_546_304_400, 10_000, .normal, "f1_z1_light")])
            let utc = try db.exec(
                "SELECT to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM sensor_readings"
            ).scalar()
            #expect(utc == "2019-01-01 01:00:00")
            try db.exec("SET TimeZone = 'UTC'")
            #expect(try db.exec("SELECT \"timestamp\"::text FROM sensor_readings").scalar() == "2019-01-01 01:00:00+00")
            #expect(
                try db.exec("SELECT extract(epoch FROM \"timestamp\")::bigint FROM sensor_readings").scalarInt64()
                    == 1_546_304_400
            )
        }
    }

    @Test(arguments: [Int64(0), -1, 946_684_799, 946_684_800, 946_684_801, 1_527_811_200, 4_102_444_800])
    func timestampsAroundEpochsRoundTrip(unixSeconds: Int64) throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE ts (t timestamptz)")
            var encoder = BinaryCopyEncoder()
            var copy = try db.copyIn("COPY ts (t) FROM STDIN (FORMAT binary)")
            encoder.appendHeader()
            encoder.appendTupleHeader(fieldCount: 1)
            encoder.appendTimestamptz(unixSeconds: unixSeconds)
            encoder.appendTrailer()
            try encoder.flush(to: &copy)
            try copy.finish()
            #expect(try db.exec("SELECT extract(epoch FROM t)::bigint FROM ts").scalarInt64() == unixSeconds)
        }
    }

    @Test func textFieldsNullValueAndStatusRoundTrip() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            _ = try load(
                db,
                [
                    (1_546_304_400, nil, .normal, "f7_z5_s1_rh"),
                    (1_546_304_460, 2_500_000, .anomaly, "f2_z2_ac14"),
                ]
            )
            let rows = try db.exec(
                """
                SELECT sensor_id, floor_number::text, equipment_type, reading_value::text, unit, status
                FROM sensor_readings ORDER BY "timestamp"
                """
            ).rows
            #expect(
                rows == [
                    ["f7_z5_s1_rh", "7", "humidity", nil, "RH%", "normal"],
                    ["f2_z2_ac14", "2", "ac", "250.0000", "kW", "anomaly"],
                ]
            )
        }
    }

    @Test func manySmallFlushesDeliverEveryRow() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            let rows = (0..<5_000).map { i in
                (
                    unixSeconds: Int64(1_527_811_200 + i * 60), value: Optional(Int64(i)), status: ReadingStatus.normal,
                    sensor: "f4_z3_plug"
                )
            }
            // A 100-byte threshold splits tuples across COPY messages.
            #expect(try load(db, rows, flushThreshold: 100) == 5_000)
            #expect(
                try db.exec("SELECT sum(reading_value * 10000)::bigint FROM sensor_readings").scalarInt64()
                    == Int64(4_999 * 5_000 / 2)
            )
        }
    }

    // MARK: - CopyInSession lifecycle

    @Test func droppedSessionAbortsAndLeavesNoRows() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            do {
                var copy = try db.copyIn(BinaryCopyEncoder.copyReadingsSQL(table: "sensor_readings"))
                var encoder = BinaryCopyEncoder()
                encoder.appendHeader()
                let fields = try #require(SensorFields(sensorID: "f1_z1_plug"))
                for i in 0..<100 {
                    encoder.appendReading(unixSeconds: Int64(i), value: 1, status: .normal, sensor: fields)
                }
                encoder.appendTrailer()
                try encoder.flush(to: &copy)
                // No finish(): the session's deinit aborts the COPY here.
            }
            #expect(db.isAlive)
            #expect(db.transactionStatus == .idle)
            #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == 0)
        }
    }

    @Test func errorInsideTransactionAbortsCopyAndRollsBack() throws {
        struct Boom: Error {}
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.exec(
                        "INSERT INTO sensor_readings (\"timestamp\", sensor_id, floor_number) VALUES (now(), 'a', 1)"
                    )
                    var copy = try db.copyIn(BinaryCopyEncoder.copyReadingsSQL(table: "sensor_readings"))
                    var encoder = BinaryCopyEncoder()
                    encoder.appendHeader()
                    try encoder.flush(to: &copy)
                    throw Boom()
                }
            }
            #expect(db.transactionStatus == .idle)
            #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == 0)
        }
    }

    @Test func serverRejectionIsReportedByFinish() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec(Schema.createReadingsTableSQL)
            let duplicate = (
                unixSeconds: Int64(1_546_304_400), value: Optional(Int64(1)), status: ReadingStatus.normal,
                sensor: "f1_z1_plug"
            )
            let error = #expect(throws: PostgresError.self) { _ = try load(db, [duplicate, duplicate]) }
            #expect(error?.code == .copyFailed)
            #expect(error?.sqlState == "23505")
            #expect(try db.exec("SELECT count(*) FROM sensor_readings").scalarInt64() == 0)
        }
    }

    @Test func malformedCopyDataIsBadCopyFileFormat() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE n (v int)")
            var copy = try db.copyIn("COPY n (v) FROM STDIN (FORMAT binary)")
            try copy.write(Array("not a binary copy stream".utf8))
            // `finish()` consumes the session, which a `#expect` closure cannot capture.
            var error: PostgresError?
            do throws(PostgresError) {
                try copy.finish()
            } catch let e {
                error = e
            }
            #expect(error?.code == .copyFailed)
            #expect(error?.sqlState == "22P04")
            #expect(try db.exec("SELECT count(*) FROM n").scalarInt64() == 0)
        }
    }

    @Test func otherCommandsAreRefusedWhileCopying() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE n (v int)")
            var copy = try db.copyIn("COPY n (v) FROM STDIN (FORMAT binary)")
            let error = #expect(throws: PostgresError.self) { try db.exec("SELECT 1") }
            #expect(error?.code == .invalidState)
            var encoder = BinaryCopyEncoder()
            encoder.appendHeader()
            encoder.appendTupleHeader(fieldCount: 1)
            encoder.appendInt32(5)
            encoder.appendTrailer()
            try encoder.flush(to: &copy)
            #expect(try copy.finish() == 1)
            #expect(try db.exec("SELECT v FROM n").scalar() == "5")
        }
    }

    @Test func copyInRejectsNonCopyStatements() throws {
        let db = try TestDatabase.connect()
        let error = #expect(throws: PostgresError.self) { _ = try db.copyIn("SELECT 1") }
        #expect(error?.code == .invalidState)
        #expect(try db.exec("SELECT 1").scalar() == "1")
    }

    @Test func copyThroughExecIsRefusedAndConnectionRecovers() throws {
        try TestDatabase.withSchema { db, _ in
            try db.exec("CREATE TABLE n (v int)")
            let error = #expect(throws: PostgresError.self) { try db.exec("COPY n FROM STDIN") }
            #expect(error?.code == .invalidState)
            #expect(try db.exec("SELECT count(*) FROM n").scalarInt64() == 0)
        }
    }
}

extension String {
    /// Two lowercase hex digits.
    fileprivate init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
