import Foundation
import Logging

/// The storage side of a load: the pre-flight estimate, the size after the load, and the connection headroom.
package struct StorageReport: Codable, Equatable, Sendable {
    /// What the pre-flight decided.
    package enum Verdict: String, Codable, Sendable {
        /// Under the warning share, or no limit configured.
        case ok
        /// At or above the warning share (80%), at most 100%: loaded with a warning.
        case warn
        /// Over 100%: refused (exit 75).
        case refuse
        /// Over 100%, loaded anyway because of `--force`.
        case forced
    }

    /// The environment's limit (`storageLimitMB` × 1 MiB), `nil` without one.
    package var limitBytes: Int64?
    /// `pg_database_size` before the load.
    package var databaseBytesBefore: Int64
    /// Readings the load will insert (dedupe chunks not yet committed in the ledger).
    package var pendingReadings: Int
    package var bytesPerReading: Double
    /// `measured on N readings` or `calibrated default` / `configured`.
    package var bytesPerReadingSource: String
    /// `databaseBytesBefore + pendingReadings × bytesPerReading`.
    package var estimatedBytes: Int64
    package var verdict: Verdict
    /// `pg_database_size` after the load, and `sensor_readings` with its indexes.
    package var databaseBytesAfter: Int64?
    package var readingsTableBytes: Int64?
    /// Client connections in use at the pre-flight, the load's planned connections (workers + 1) and the server's
    /// `max_connections`.
    package var connectionsInUse: Int?
    package var connectionsPlanned: Int?
    package var maxConnections: Int?
    /// The day sample of the current normalize run, for the advice of a smaller one.
    package var sample: Double?

    /// Estimated share of the limit.
    package var estimatedShare: Double? { limitBytes.map { Double(estimatedBytes) / Double($0) } }
    /// Share of the limit after the load.
    package var shareAfter: Double? {
        guard let limitBytes, let databaseBytesAfter else { return nil }
        return Double(databaseBytesAfter) / Double(limitBytes)
    }
    /// Share of `max_connections` in use with the load's connections added.
    package var connectionShare: Double? {
        guard let connectionsInUse, let maxConnections, maxConnections > 0 else { return nil }
        return Double(connectionsInUse + (connectionsPlanned ?? 0)) / Double(maxConnections)
    }

    /// The storage and connection warnings at `share` of the limits.
    package func alerts(name: String, share: Double) -> [Alert] {
        var alerts: [Alert] = []
        if let limitBytes {
            if let after = shareAfter, after >= share {
                alerts.append(
                    Alert(
                        .warning, "storage",
                        "\(name): the database uses \(StoragePreflight.mb(databaseBytesAfter ?? 0)) of its "
                            + "\(StoragePreflight.mb(limitBytes)) limit (\(StoragePreflight.percent(after)))"))
            } else if shareAfter == nil, let estimated = estimatedShare, estimated >= share {
                alerts.append(
                    Alert(
                        .warning, "storage",
                        "\(name): the database will use about \(StoragePreflight.mb(estimatedBytes)) of its "
                            + "\(StoragePreflight.mb(limitBytes)) limit (\(StoragePreflight.percent(estimated)))"))
            }
        }
        if let c = connectionShare, c >= share {
            alerts.append(
                Alert(
                    .warning, "connections",
                    "\(name): \(connectionsInUse ?? 0) client connections in use and \(connectionsPlanned ?? 0) for "
                        + "the load, of max_connections \(maxConnections ?? 0) (\(StoragePreflight.percent(c)))"))
        }
        return alerts
    }
}

/// Load's storage pre-flight: estimates the database size after the import and refuses a load that would exceed
/// the environment's storage limit (`environments.<env>.storageLimitMB`; a Supabase free tier is 500 MB).
///
/// Estimate = `pg_database_size` now + readings to insert × bytes per reading. Bytes per reading cover
/// `sensor_readings` with its indexes (and TOAST) plus `daily_aggregates`, measured on the target as
/// `(pg_total_relation_size(sensor_readings) + pg_total_relation_size(daily_aggregates)) / readings` once it holds at
/// least ``minimumReadingsToMeasure`` readings, else ``PipelineConfig/Monitoring/bytesPerReading`` (calibrated
/// default ``calibratedBytesPerReading``). Over 100% the load is refused with exit 75 (unless forced); from 80%
/// (``AlertThresholds/limitShare``) it warns. Sizes are in MiB (shown as MB).
package enum StoragePreflight {
    /// Bytes per reading measured on a loaded test database (README, Storage limits): a generated week of all 7
    /// floors (`bems sample --days 7 --floors 1,…,7 --seed 42`, `--sample 1`), 1 636 923 readings after the first
    /// load (secondary indexes rebuilt), refresh and `VACUUM ANALYZE`: 189.1 bytes for table (86.2), indexes
    /// (102.6: unique key 68.2, primary key 26.2, floor btree 8.2 (a BRIN since: next to nothing), BRIN 0.02) and
    /// view (0.1); the whole database grew 189.9 bytes per reading with the ledger. Rounded up, and kept since the
    /// floor BRIN: about 8 bytes per reading to the safe side.
    package static let calibratedBytesPerReading = 190
    /// Below this many stored readings, fixed overheads (empty index pages, the view) distort a measurement.
    package static let minimumReadingsToMeasure: Int64 = 100_000

    /// What the target holds now.
    package struct Measurement: Sendable, Equatable {
        package var databaseBytes: Int64
        /// `sensor_readings` with indexes and TOAST (0 when the table does not exist).
        package var readingsBytes: Int64
        /// `daily_aggregates` with its index.
        package var viewBytes: Int64
        /// Rows of `sensor_readings` (exact below 64 MiB, else the planner's estimate).
        package var readings: Int64

        package init(databaseBytes: Int64, readingsBytes: Int64, viewBytes: Int64, readings: Int64) {
            self.databaseBytes = databaseBytes
            self.readingsBytes = readingsBytes
            self.viewBytes = viewBytes
            self.readings = readings
        }
    }

    /// Measures the database `db` is connected to (`sensor_readings` as the search path finds it).
    package static func measure(on db: PGConnection) throws -> Measurement {
        let r = try db.exec(
            """
            SELECT pg_database_size(current_database()),
                   COALESCE(pg_total_relation_size(to_regclass('\(Schema.readingsTable)')), 0),
                   COALESCE(pg_total_relation_size(to_regclass('\(Schema.aggregatesTable)')), 0),
                   COALESCE((SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('\(Schema.readingsTable)')), -1)
            """)
        var m = Measurement(
            databaseBytes: try r.int64(row: 0, col: 0) ?? 0, readingsBytes: try r.int64(row: 0, col: 1) ?? 0,
            viewBytes: try r.int64(row: 0, col: 2) ?? 0, readings: try r.int64(row: 0, col: 3) ?? -1)
        if m.readingsBytes == 0 {
            m.readings = 0
        } else if m.readings < 0 || m.readingsBytes < 64 << 20 {
            // Never analyzed, or small enough to count exactly.
            m.readings = try db.exec("SELECT count(*) FROM \(Schema.readingsTable)").scalarInt64() ?? 0
        }
        return m
    }

    /// Bytes per reading from a measurement, or `fallback` when the target holds too few readings.
    package static func bytesPerReading(
        _ m: Measurement, fallback: Int, configured: Bool = false
    ) -> (bytes: Double, source: String) {
        guard m.readings >= minimumReadingsToMeasure else {
            return (Double(fallback), configured ? "configured" : "calibrated default")
        }
        return (Double(m.readingsBytes + m.viewBytes) / Double(m.readings), "measured on \(m.readings) readings")
    }

    /// The pre-flight decision for the given figures (no database involved).
    package static func evaluate(
        databaseBytes: Int64, pendingReadings: Int, bytesPerReading: Double, source: String, limitMB: Int?,
        warnShare: Double, force: Bool
    ) -> StorageReport {
        let estimated = databaseBytes + Int64((Double(pendingReadings) * bytesPerReading).rounded(.up))
        let limit = limitMB.map { Int64($0) << 20 }
        var verdict = StorageReport.Verdict.ok
        if let limit, pendingReadings > 0 {
            let share = Double(estimated) / Double(limit)
            if share > 1 {
                verdict = force ? .forced : .refuse
            } else if share >= warnShare {
                verdict = .warn
            }
        }
        return StorageReport(
            limitBytes: limit, databaseBytesBefore: databaseBytes, pendingReadings: pendingReadings,
            bytesPerReading: bytesPerReading, bytesPerReadingSource: source, estimatedBytes: estimated,
            verdict: verdict)
    }

    /// Readings the load of the current dedupe run will insert: the `inserts` of its chunks that the ledger does not
    /// hold committed yet (all of them when the ledger does not exist). `nil` without a dedupe run.
    package static func pendingReadings(
        work: WorkDir, db: PGConnection, ledgerSchema: String, timeZone: String
    ) throws -> Int? {
        guard let dedupe = try work.currentManifest(.dedupe) else { return nil }
        let ledger = LoadLedger(schema: ledgerSchema, timeZone: timeZone)
        let exists =
            try db.exec("SELECT to_regclass($1) IS NOT NULL", parameters: [ledgerSchema + ".loaded_chunks"])
            .scalar() == "t"
        let committed =
            exists
            ? try ledger.committedPieces(names: dedupe.chunks.map(\.file), sha256s: dedupe.chunks.map(\.sha256), on: db)
            : [:]
        // A chunk committed in pieces (after statement timeouts) counts with the inserts its pieces have not made.
        return dedupe.chunks.reduce(0) { total, chunk in
            let inserts = chunk.inserts ?? chunk.rows
            let done = committed[LoadLedger.key(name: chunk.file, sha256: chunk.sha256)]?.inserted ?? 0
            return total + max(0, inserts - done)
        }
    }

    /// The check `bems-load` runs before ``LoadStage/run(_:logger:)``: measures the target, estimates the size after
    /// the load and compares it with the environment's limit.
    ///
    /// - Returns: The report (``StorageReport/Verdict/warn`` and ``StorageReport/Verdict/forced`` are for the caller
    ///   to print), or `nil` when there is no dedupe run (the load itself then reports that).
    /// - Throws: ``PipelineError`` 75 when the estimate is over the limit and `force` is off; the connection's
    ///   errors (69).
    package static func check(
        config: PipelineConfig, env: String, database: DatabaseTarget, ledgerSchema: String, workers: Int,
        force: Bool, logger: Logger
    ) throws -> StorageReport? {
        let work = WorkDir(root: config.workDir)
        guard try work.currentManifest(.dedupe) != nil else { return nil }
        let settings = config.environments[env] ?? PipelineConfig.Environment(databaseURLEnv: "", sample: 1)
        let db = try database.connect(logger: logger)
        guard
            let pending = try pendingReadings(
                work: work, db: db, ledgerSchema: ledgerSchema, timeZone: config.timeZone)
        else { return nil }
        let m = try measure(on: db)
        let configured = config.monitoring.bytesPerReading != calibratedBytesPerReading
        let (bpr, source) = bytesPerReading(m, fallback: config.monitoring.bytesPerReading, configured: configured)
        var report = evaluate(
            databaseBytes: m.databaseBytes, pendingReadings: pending, bytesPerReading: bpr, source: source,
            limitMB: settings.storageLimitMB, warnShare: settings.alerts.limitShare, force: force)
        if let c = try? ConnectionBudget().reading(on: db) {
            report.connectionsInUse = c.inUse
            report.maxConnections = c.serverMax
            report.connectionsPlanned = workers + 1
        }
        logger.info(
            "storage pre-flight",
            metadata: [
                "database.bytes": "\(m.databaseBytes)", "readings.pending": "\(pending)",
                "bytes.per.reading": "\(String(format: "%.1f", bpr))", "estimate.bytes": "\(report.estimatedBytes)",
                "limit.bytes": "\(report.limitBytes.map(String.init) ?? "none")",
                "verdict": "\(report.verdict.rawValue)",
            ])
        report.sample = (try? work.currentManifest(.normalize))??.sample?.fraction ?? settings.sample
        if report.verdict == .refuse {
            throw PipelineError(.overLimit, report.preflightMessage(env: env))
        }
        return report
    }

    /// The line `bems-load` prints after loading: the database size and its share of the limit.
    package static func afterLoadMessage(_ r: StorageReport, env: String) -> String? {
        guard let after = r.databaseBytesAfter else { return nil }
        var text = "storage (\(env)): database \(mb(after))"
        if let t = r.readingsTableBytes { text += " (sensor_readings with indexes \(mb(t)))" }
        if let limit = r.limitBytes, let share = r.shareAfter {
            text += ", \(percent(share)) of the \(mb(limit)) limit"
        } else {
            text += ", no storage limit set"
        }
        return text
    }

    /// Measures the database after the load into `report` (best-effort: a failure leaves the fields empty).
    package static func measureAfterLoad(_ report: inout StorageReport, database: DatabaseTarget, logger: Logger) {
        guard let db = try? database.connect(logger: logger), let m = try? measure(on: db) else { return }
        report.databaseBytesAfter = m.databaseBytes
        report.readingsTableBytes = m.readingsBytes
    }

    /// `123.4 MB` (MiB).
    package static func mb(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_048_576) }
    /// `81.2%`.
    package static func percent(_ share: Double) -> String { String(format: "%.1f%%", share * 100) }
}

extension StorageReport {
    /// The pre-flight's message: the numbers and, over the limit, the options.
    package func preflightMessage(env: String) -> String {
        typealias P = StoragePreflight
        let sample = self.sample ?? 1
        var text =
            "storage pre-flight (\(env)): \(P.mb(databaseBytesBefore)) now + \(pendingReadings) readings × "
            + "\(String(format: "%.0f", bytesPerReading)) B (\(bytesPerReadingSource)) ≈ \(P.mb(estimatedBytes))"
        guard let limitBytes, let share = estimatedShare else {
            return text + "; no storage limit set (environments.\(env).storageLimitMB)"
        }
        text += ", \(P.percent(share)) of the \(P.mb(limitBytes)) limit (environments.\(env).storageLimitMB)"
        switch verdict {
        case .ok: return text
        case .warn: return text + ": close to the limit"
        case .refuse, .forced:
            let room = Double(limitBytes) * 0.8 - Double(databaseBytesBefore)
            let fit = room > 0 ? sample * room / (Double(pendingReadings) * bytesPerReading) : 0
            let sampleAdvice =
                fit > 0
                ? "load a smaller sample (normalize --sample \(String(format: "%.3f", max(0.001, (fit * 1000).rounded(.down) / 1000))) keeps it under 80%, now \(sample))"
                : "free space first (the database is already near its limit)"
            text += ": over the limit. Options: \(sampleAdvice); move to a bigger plan and raise storageLimitMB; "
            text += verdict == .forced ? "--force was given, loading anyway" : "or pass --force to load anyway"
            return text
        }
    }
}
