import Crypto
import Foundation
import Logging

/// The dedupe stage: turns the current normalize run's chunks into chunks of readings to insert or update.
///
/// Per (floor, local day) group of normalize chunks:
/// 1. **In-batch merge** (``BatchMerge``): one reading per (sensor id, timestamp). Identical duplicates are dropped
///    and counted; for conflicting values the later source wins (higher input index in the normalize manifest, then
///    later chunk and row), and every conflict goes to `conflicts.jsonl` in the run folder.
/// 2. **Classification against the database** (``GroupClassifier``), read-only: insert when the key is absent,
///    update when the stored value or status differs (the stored ones are kept in the chunk's `previousValues` /
///    `previousStatuses` for rollback), skip when identical. Skipped readings are not written.
///
/// ## Incremental strategy: per-sensor watermarks
///
/// The stage never reads the whole table. One query per run fetches each affected sensor's stored `min` and `max`
/// timestamp through index probes (``SnapshotSession/watermarks(of:)``). A group whose readings of a sensor all lie
/// outside that window needs no lookup: they are inserts. So the first load and appending new days cost one query.
/// Only a group with readings inside some sensor's window fetches the stored rows of those sensors in its time
/// range, an indexed range read (``SnapshotSession/existing(sensorIDs:from:to:)``); ``Result/lookupQueries`` counts
/// them. When `sensor_readings` does not exist yet, everything is an insert.
///
/// ## Snapshot and optimistic concurrency
///
/// All reads happen in one `REPEATABLE READ READ ONLY` snapshot exported to the worker connections, and the time it
/// was taken is recorded in the report (`snapshotTakenAt`) and in each chunk's metadata. The classification is
/// valid only for that state of the database; the load stage refuses chunks whose assumptions broke.
///
/// ## Retries
///
/// A transient failure of any session (the exporting one or a worker's) retries the whole classification with the
/// environment's ``RetryPolicy``: a new snapshot on new connections, every group classified again, the failed
/// attempt's files removed from the unpublished run folder. Sessions are named `bems-dedupe` in
/// `pg_stat_activity` unless the connection string sets `application_name`.
///
/// Make-style: when the normalize run and the settings are unchanged since the current dedupe run, nothing runs
/// (unless ``Options/force``).
package enum DedupeStage {
    /// What a dedupe invocation was asked to do.
    package struct Options: Sendable {
        /// The pipeline configuration (work dir, zstd level, environments).
        package var config: PipelineConfig
        /// The environment (dev, staging, prod).
        package var env: String
        /// Run even when the current dedupe run is up to date.
        package var force = false
        /// Groups processed in parallel (each worker has its own connection); `0` means one per core.
        package var parallelism = 0
        /// The process environment, where ``DatabaseTarget`` finds the connection string (tests inject theirs).
        package var environment: [String: String] = ProcessInfo.processInfo.environment
        /// The database, already resolved (the commands resolve it with their options); `nil` resolves it from
        /// ``environment``.
        package var database: DatabaseTarget?

        /// Creates options.
        /// Live progress and chunk timings (``StageProgress``); silent unless the command gives one.
        package var progress = StageProgress.silent

        package init(config: PipelineConfig, env: String) {
            self.config = config
            self.env = env
        }
    }

    /// The outcome.
    package struct Result: Sendable {
        /// The published manifest (or the current one when up to date).
        package var manifest: StageManifest
        /// The run's `report.json`.
        package var report: DedupeReport
        /// True when the normalize run and settings were unchanged and nothing ran.
        package var upToDate: Bool
        /// The run folder.
        package var runDirectory: String
        /// Classification attempts: 1, plus one per retry after a transient database failure (0 when up to date).
        package var classificationAttempts: Int
        /// Range lookups issued against `sensor_readings` (0 when the watermarks ruled every group out).
        package var lookupQueries: Int { report.lookupQueries }
    }

    /// The name of the conflict report in the run folder.
    package static let conflictsFile = "conflicts.jsonl"

    /// Runs the stage.
    ///
    /// - Throws: ``PipelineError``: 66 without a normalize run or with a missing chunk, 74 for a chunk whose
    ///   SHA-256 differs from the manifest (or an I/O failure), 64/69 for the database target, 73 for a locked work
    ///   directory.
    package static func run(_ options: Options, logger: Logger) async throws -> Result {
        let config = options.config
        let work = WorkDir(root: config.workDir)
        let lock = try WorkDirLock(directory: work.root)
        defer { withExtendedLifetime(lock) {} }

        guard let normalize = try work.currentManifest(.normalize) else {
            throw PipelineError.noInput("no current normalize run in \(work.root): run bems-normalize first")
        }
        let fingerprint = makeFingerprint(normalize: normalize, options: options)
        if !options.force, let current = try work.currentManifest(.dedupe), current.fingerprint == fingerprint,
            work.staleReason(.dedupe, current.runID) == nil
        {
            let dir = work.runDirectory(.dedupe, current.runID)
            let report = try AtomicFile.readJSON(DedupeReport.self, from: dir + "/report.json")
            logger.info("dedupe is up to date", metadata: ["run": "\(current.runID)"])
            return Result(
                manifest: current, report: report, upToDate: true, runDirectory: dir, classificationAttempts: 0)
        }

        let started = Date()
        let normalizeDir = work.runDirectory(.normalize, normalize.runID)
        let groups = makeGroups(normalize)

        // Verify every chunk against the manifest before reading it, and collect the sensors for the watermarks.
        let records = normalize.chunks
        let sensorLists: [[String]]
        do {
            sensorLists =
                records.isEmpty
                ? []
                : try await parallelMap(count: records.count, width: options.parallelism) { i in
                    let bytes = try readVerified(records[i], directory: normalizeDir)
                    do {
                        return try ChunkReader.readHeader(bytes, verifyChecksum: false).sensors.filter { $0.count > 0 }
                            .map(\.sensorID)
                    } catch {
                        throw PipelineError.io("\(records[i].file): unreadable chunk header: \(error)")
                    }
                }
        } catch let error as PipelineError {
            // The normalize run is unusable: a plain rerun of bems-normalize must write it again.
            guard (try? work.markStale(.normalize, normalize.runID, reason: error.message)) != nil else { throw error }
            throw PipelineError(error.exitStatus, error.message + " (normalize run \(normalize.runID) marked stale)")
        }
        let allSensors = Array(Set(sensorLists.joined())).sorted()

        // Classification against the database: every read uses one exported REPEATABLE READ snapshot, whose
        // exporting session stays open until the group workers are done. A transient failure of any of these
        // sessions (connection lost, admin shutdown, …) fails the attempt as a whole: the snapshot dies with its
        // exporting session, so the retry takes a new snapshot on new connections and classifies every group again.
        // The failed attempt's files are removed first; nothing is published until an attempt succeeds.
        var target = try options.database
            ?? DatabaseTarget.resolve(config: config, env: options.env, environment: options.environment, logger: logger)
        if target.applicationName == nil { target.applicationName = "bems-dedupe" }
        var createdRunID: String?
        // A failure (disk full, read-only, I/O, a permanent database error) leaves no run folder behind; a kill
        // leaves one without a manifest.
        var published = false
        defer { if !published, let createdRunID { work.discardRun(.dedupe, createdRunID) } }
        var attempts = 0
        let classified: Classification
        do {
            classified = try await target.retry.run("dedupe classification", logger: logger) {
                () async throws -> Classification in
                attempts += 1
                let snapshot = try takeSnapshot(target: target, sensors: allSensors)
                logger.info(
                    "dedupe snapshot taken",
                    metadata: [
                        "snapshot.at": "\(snapshot.takenAt)", "sensors": "\(allSensors.count)",
                        "sensors.stored": "\(snapshot.watermarks.count)", "table.exists": "\(snapshot.tableExists)",
                        "attempt": "\(attempts)",
                    ])
                let runID: String
                if let createdRunID {
                    runID = createdRunID
                    try removeAttemptFiles(runDirectory: work.runDirectory(.dedupe, runID))
                } else {
                    runID = try work.createRun(.dedupe)
                    createdRunID = runID
                }
                let runDir = work.runDirectory(.dedupe, runID)
                try AtomicFile.makeDirectory(runDir + "/chunks")
                try AtomicFile.makeDirectory(runDir + "/conflict-parts")
                logger.info("dedupe started", metadata: ["run": "\(runID)", "groups": "\(groups.count)"])
                options.progress.begin(total: .rows(normalize.totals["readings"] ?? 0))

                let context = GroupContext(
                    normalizeDirectory: normalizeDir, runDirectory: runDir, runID: runID,
                    upstreamRunID: normalize.runID, zstdLevel: Int32(config.chunk.zstdLevel),
                    watermarks: snapshot.watermarks, snapshotID: snapshot.tableExists ? snapshot.id : nil,
                    snapshotTakenAt: snapshot.takenAt, database: target, progress: options.progress)
                // Worker connections within the environment's cap and 80% of the server's max_connections.
                let wanted = max(
                    1, min(options.parallelism > 0 ? options.parallelism : ProcessInfoCores.count, groups.count))
                let width = try ConnectionBudget(
                    cap: max(1, (config.environments[options.env]?.maxConnections ?? 100) - 1)
                ).workers(wanted: wanted, on: snapshot.session.db, logger: logger).workers
                let outcomes = try await withThrowingTaskGroup(of: [GroupOutcome].self) { taskGroup in
                    for w in 0..<width {
                        taskGroup.addTask {
                            try runWorker(w, of: width, groups: groups, context: context)
                        }
                    }
                    var all: [GroupOutcome] = []
                    for try await part in taskGroup { all += part }
                    return all.sorted { $0.index < $1.index }
                }
                withExtendedLifetime(snapshot.session) {}
                return Classification(
                    runID: runID, runDirectory: runDir, tableExists: snapshot.tableExists, takenAt: snapshot.takenAt,
                    takenAtUnix: snapshot.unix, watermarks: snapshot.watermarks, outcomes: outcomes)
            }
        } catch {
            throw databaseError(error, target: target)
        }
        let runID = classified.runID
        let runDir = classified.runDirectory
        let outcomes = classified.outcomes
        let takenAt = classified.takenAt
        let tableExists = classified.tableExists
        let watermarks = classified.watermarks
        let takenAtUnix = classified.takenAtUnix

        // Conflicts, in group order: concatenate the per-group parts, so memory never holds more than one group's.
        try concatenateConflictParts(outcomes, runDirectory: runDir)

        var report = DedupeReport(
            runID: runID, normalizeRunID: normalize.runID, env: options.env, snapshotTakenAt: takenAt,
            tableExisted: tableExists)
        for outcome in outcomes {
            report.groups += 1
            report.readingsIn += outcome.readingsIn
            report.duplicatesDropped += outcome.duplicatesDropped
            report.conflicts += outcome.conflicts
            report.inserts += outcome.inserts
            report.updates += outcome.updates
            report.skips += outcome.skips
            report.lookupQueries += outcome.lookedUp ? 1 : 0
            if outcome.record != nil { report.chunksWritten += 1 }
        }
        report.sensorsWithRows = watermarks.count
        report.snapshotUnix = Int(takenAtUnix)
        report.seconds = Date().timeIntervalSince(started)
        report.readingsPerSecond = report.seconds > 0 ? Int(Double(report.readingsIn) / report.seconds) : 0
        try AtomicFile.writeJSON(report, to: runDir + "/report.json")

        let manifest = StageManifest(
            stage: .dedupe, runID: runID, previousRunID: work.currentRunID(.dedupe),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: fingerprint, upstreamRunID: normalize.runID,
            inputs: records.map {
                InputRecord(
                    path: normalizeDir + "/" + $0.file, name: $0.file, floor: $0.floor, sha256: $0.sha256,
                    bytes: $0.bytes)
            },
            chunks: outcomes.compactMap(\.record), passed: true,
            totals: report.totals.merging(["classificationAttempts": attempts]) { a, _ in a },
            seconds: report.seconds)
        // Chunks were written without an fsync each; one sync makes them durable before the manifest points at them.
        AtomicFile.syncFileSystem(containing: runDir + "/chunks")
        try work.publish(manifest)
        published = true
        logger.notice(
            "dedupe finished",
            metadata: [
                "run": "\(runID)", "readings.in": "\(report.readingsIn)",
                "duplicates": "\(report.duplicatesDropped)", "conflicts": "\(report.conflicts)",
                "inserts": "\(report.inserts)", "updates": "\(report.updates)", "skips": "\(report.skips)",
                "lookups": "\(report.lookupQueries)", "snapshot.at": "\(takenAt)", "attempts": "\(attempts)",
                "seconds": "\(String(format: "%.2f", report.seconds))",
            ])
        return Result(
            manifest: manifest, report: report, upToDate: false, runDirectory: runDir,
            classificationAttempts: attempts)
    }

    // MARK: - Grouping

    /// The normalize chunks of one (floor, day).
    package struct Group: Sendable {
        /// The position of the group in floor, day order.
        package var index: Int
        /// The floor.
        package var floor: Int
        /// The local day, `YYYY-MM-DD`.
        package var day: String
        /// The chunks with their source index and sequence, and the input's path (its name when unknown) for the
        /// conflict report.
        package var members: [(record: ChunkRecord, sourceIndex: Int, sequence: Int, sourceLabel: String)]
    }

    /// Groups the manifest's chunks by (floor, day), ordered by floor then day.
    package static func makeGroups(_ manifest: StageManifest) -> [Group] {
        var byKey: [String: [(ChunkRecord, Int, Int, String)]] = [:]
        var keys: [(Int, String)] = []
        for (position, record) in manifest.chunks.enumerated() {
            let key = "\(record.floor)|\(record.day)"
            if byKey[key] == nil { keys.append((record.floor, record.day)) }
            let (source, sequence) = sourceOrder(record, inputs: manifest.inputs, position: position)
            let label = manifest.inputs.indices.contains(source) ? manifest.inputs[source].path : record.source
            byKey[key, default: []].append((record, source, sequence, label))
        }
        keys.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return keys.enumerated().map { i, key in
            Group(
                index: i, floor: key.0, day: key.1,
                members: byKey["\(key.0)|\(key.1)"]!.map {
                    (record: $0.0, sourceIndex: $0.1, sequence: $0.2, sourceLabel: $0.3)
                })
        }
    }

    /// The source index of a chunk (its input's position in the manifest: the `-s<index>-` normalize puts in the
    /// file name, else the input whose name or path is the chunk's source) and its sequence (the file name's last number, else its manifest position).
    static func sourceOrder(_ record: ChunkRecord, inputs: [InputRecord], position: Int) -> (Int, Int) {
        let name = record.file.split(separator: "/").last.map(String.init) ?? record.file
        let stem = name.hasSuffix(".bemc") ? String(name.dropLast(5)) : name
        let parts = stem.split(separator: "-")
        var source: Int?
        if let part = parts.last(where: { $0.hasPrefix("s") && Int($0.dropFirst()) != nil }) {
            source = Int(part.dropFirst())
        }
        if source == nil { source = inputs.firstIndex { $0.name == record.source || $0.path == record.source } }
        let sequence = parts.count > 1 ? Int(parts.last!) : nil
        return (source ?? 0, sequence ?? position)
    }

    // MARK: - Workers

    struct GroupContext: Sendable {
        var normalizeDirectory: String
        var runDirectory: String
        var runID: String
        var upstreamRunID: String
        var zstdLevel: Int32
        var watermarks: [String: SensorWatermark]
        /// `nil` when `sensor_readings` does not exist (no lookups at all).
        var snapshotID: String?
        var snapshotTakenAt: String
        /// Where the workers connect (with the stage's `application_name`).
        var database: DatabaseTarget
        /// Readings and bytes classified, each group's seconds.
        var progress = StageProgress.silent
    }

    struct GroupOutcome: Sendable {
        var index: Int
        var record: ChunkRecord?
        /// Conflicts found; when non-zero they are in `conflicts/<index>.jsonl` until concatenated.
        var conflicts: Int
        var readingsIn: Int
        var duplicatesDropped: Int
        var inserts: Int
        var updates: Int
        var skips: Int
        var lookedUp: Bool
    }

    /// Processes groups `w`, `w + width`, …, with one lazily opened connection in the shared snapshot. Stops early
    /// (``CancellationError``) once another worker failed.
    ///
    /// - Throws: ``PostgresError`` for database failures (the stage retries the classification when transient).
    static func runWorker(_ w: Int, of width: Int, groups: [Group], context: GroupContext) throws -> [GroupOutcome] {
        var session: SnapshotSession?
        var outcomes: [GroupOutcome] = []
        var g = w
        while g < groups.count {
            try Task.checkCancellation()
            outcomes.append(
                try processGroup(groups[g], context: context) {
                    if let session { return session }
                    guard let id = context.snapshotID else {
                        throw PipelineError(.unexpected, "lookup requested without a snapshot")
                    }
                    let opened = try SnapshotSession(db: try context.database.open(), importing: id)
                    session = opened
                    return opened
                })
            g += width
        }
        return outcomes
    }

    /// Merges, classifies and writes one group.
    static func processGroup(
        _ group: Group, context: GroupContext, session: () throws -> SnapshotSession
    ) throws -> GroupOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        var inputs: [MergeInput] = []
        var inputBytes = 0
        for member in group.members {
            let bytes = try readVerified(member.record, directory: context.normalizeDirectory)
            inputBytes += bytes.count
            let data: ChunkData
            do {
                data = try ChunkReader.decode(bytes).data
            } catch {
                throw PipelineError.io("\(member.record.file): \(error)")
            }
            inputs.append(
                MergeInput(
                    data: data, sourceIndex: member.sourceIndex, sequence: member.sequence,
                    source: member.sourceLabel))
        }
        let merged = BatchMerge.merge(inputs)
        var existing = ExistingRows()
        var lookedUp = false
        if let overlap = GroupClassifier.overlap(merged, watermarks: context.watermarks) {
            existing = try session().existing(
                sensorIDs: overlap.sensors.map { merged.sensorIDs[$0] }, from: overlap.from, to: overlap.to)
            lookedUp = true
        }
        if !merged.conflicts.isEmpty {
            var text = ""
            for conflict in merged.conflicts { text += conflict.jsonLine + "\n" }
            try AtomicFile.write(
                Array(text.utf8), to: conflictPartPath(group.index, runDirectory: context.runDirectory), durable: false)
        }
        let sources = Array(Set(group.members.map(\.record.source))).sorted()
        let metadata = [
            "floor": String(group.floor), "day": group.day, "stage": "dedupe", "run": context.runID,
            "upstream": context.upstreamRunID, "sources": sources.joined(separator: ","),
            "snapshot": context.snapshotTakenAt,
        ]
        let classified = GroupClassifier.classify(merged, existing: existing, metadata: metadata)
        var record: ChunkRecord?
        if classified.data.count > 0 {
            let file = "chunks/f\(group.floor)-\(group.day).bemc"
            let bytes: [UInt8]
            do {
                bytes = try ChunkWriter.encode(classified.data, level: context.zstdLevel)
                try ChunkFile.write(bytes, to: context.runDirectory + "/" + file, durable: false)
            } catch {
                throw PipelineError.io("\(file): \(error)")
            }
            record = ChunkRecord(
                file: file, sha256: sha256Hex(bytes), bytes: bytes.count, rows: classified.data.count,
                minTimestamp: classified.data.timestamps.min() ?? 0,
                maxTimestamp: classified.data.timestamps.max() ?? 0,
                floor: group.floor, day: group.day, source: sources.joined(separator: ","),
                inserts: classified.inserts, updates: classified.updates, skips: classified.skips)
        }
        context.progress.advance(rows: merged.readingsIn, bytes: inputBytes)
        context.progress.recordChunk(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        return GroupOutcome(
            index: group.index, record: record, conflicts: merged.conflicts.count, readingsIn: merged.readingsIn,
            duplicatesDropped: merged.duplicatesDropped, inserts: classified.inserts, updates: classified.updates,
            skips: classified.skips, lookedUp: lookedUp)
    }

    // MARK: - Helpers

    static func conflictPartPath(_ index: Int, runDirectory: String) -> String {
        "\(runDirectory)/conflict-parts/\(index).jsonl"
    }

    /// Writes `conflicts.jsonl` from the groups' part files, in group order, streaming, and removes the parts.
    static func concatenateConflictParts(_ outcomes: [GroupOutcome], runDirectory: String) throws {
        let path = runDirectory + "/" + conflictsFile
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let out = FileHandle(forWritingAtPath: path)
        else { throw PipelineError.io("\(path): cannot create") }
        do {
            for outcome in outcomes where outcome.conflicts > 0 {
                let part = conflictPartPath(outcome.index, runDirectory: runDirectory)
                guard let data = FileManager.default.contents(atPath: part) else {
                    throw PipelineError.io("\(part): missing conflict part")
                }
                try out.write(contentsOf: data)
            }
            try out.synchronize()
            try out.close()
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.io("\(path): \(error)")
        }
        try? FileManager.default.removeItem(atPath: runDirectory + "/conflict-parts")
    }

    /// Reads a normalize chunk and checks its SHA-256 against the manifest.
    ///
    /// - Throws: ``PipelineError`` 66 when the file is missing, 74 when it differs from the manifest.
    static func readVerified(_ record: ChunkRecord, directory: String) throws -> [UInt8] {
        let bytes: [UInt8]
        do {
            bytes = try ChunkFile.read(directory + "/" + record.file)
        } catch let error where error.code == .fileNotFound {
            throw PipelineError.noInput("\(record.file): chunk of the normalize run is missing: rerun bems-normalize")
        } catch {
            throw PipelineError.io("\(record.file): \(error)")
        }
        let actual = sha256Hex(bytes)
        guard actual == record.sha256 else {
            throw PipelineError.io(
                "\(record.file): SHA-256 \(actual) does not match the normalize manifest (\(record.sha256)); the chunk"
                    + " is corrupt: rerun bems-normalize")
        }
        return bytes
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Digest.hex(hasher.finalize())
    }

    /// A failure of the classification as the stage reports it: a ``PostgresError`` becomes exit 69 (a failed
    /// connection names the environment and its variable, never the connection string); anything else is thrown
    /// as it is.
    static func databaseError(_ error: any Error, target: DatabaseTarget) -> any Error {
        guard let error = error as? PostgresError else { return error }
        if error.code == .connectionFailed {
            return PipelineError(
                .unavailable, "cannot connect to the \(target.env) database (\(target.variable)): \(error)")
        }
        return PipelineError(.unavailable, "reading sensor_readings failed: \(error)")
    }

    /// The exported snapshot of one classification attempt and what was read in it before the groups.
    struct Snapshot {
        /// The exporting session; it must stay open until the workers have imported the snapshot.
        var session: SnapshotSession
        var tableExists: Bool
        var id: String
        var takenAt: String
        var unix: Int64
        var watermarks: [String: SensorWatermark]
    }

    /// Opens the exporting session, exports its snapshot and reads the watermarks of `sensors` in it.
    static func takeSnapshot(target: DatabaseTarget, sensors: [String]) throws -> Snapshot {
        let session = try SnapshotSession(db: try target.open())
        let tableExists = try session.readingsTableExists()
        let exported = try session.export()
        let watermarks = tableExists ? try session.watermarks(of: sensors) : [:]
        return Snapshot(
            session: session, tableExists: tableExists, id: exported.id, takenAt: exported.takenAt,
            unix: exported.unix, watermarks: watermarks)
    }

    /// What a successful classification attempt produced.
    struct Classification: Sendable {
        var runID: String
        var runDirectory: String
        var tableExists: Bool
        var takenAt: String
        var takenAtUnix: Int64
        var watermarks: [String: SensorWatermark]
        var outcomes: [GroupOutcome]
    }

    /// Removes what a failed classification attempt wrote into the (unpublished) run folder.
    static func removeAttemptFiles(runDirectory: String) throws {
        for folder in ["chunks", "conflict-parts"] {
            let path = runDirectory + "/" + folder
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                try FileManager.default.removeItem(atPath: path)
            } catch {
                throw PipelineError.io("\(path): cannot remove the files of a failed attempt: \(error)")
            }
        }
    }

    static func makeFingerprint(normalize: StageManifest, options: Options) -> String {
        Fingerprint.make(
            .dedupe,
            [
                "normalize=\(normalize.runID)|\(normalize.fingerprint)", "env=\(options.env)",
                "zstd=\(options.config.chunk.zstdLevel)",
            ])
    }
}

/// The `report.json` of a dedupe run.
package struct DedupeReport: Codable, Equatable, Sendable {
    /// The dedupe run.
    package var runID: String
    /// The normalize run it read.
    package var normalizeRunID: String
    /// The environment (dev, staging, prod).
    package var env: String
    /// When the database snapshot the classification used was taken (ISO 8601 UTC); the classification is only
    /// valid for that state of the database.
    package var snapshotTakenAt: String
    /// The same instant in Unix seconds (also in the manifest's totals as `snapshotUnix`).
    package var snapshotUnix = 0
    /// Whether `sensor_readings` existed (otherwise everything is an insert).
    package var tableExisted: Bool
    /// (floor, day) groups processed.
    package var groups = 0
    /// Chunks written (groups with inserts or updates).
    package var chunksWritten = 0
    /// Readings in the normalize chunks.
    package var readingsIn = 0
    /// Identical duplicates dropped in the batch.
    package var duplicatesDropped = 0
    /// Conflicting duplicates dropped (each one a line of `conflicts.jsonl`).
    package var conflicts = 0
    /// Readings whose key is not stored.
    package var inserts = 0
    /// Readings replacing a stored value or status.
    package var updates = 0
    /// Readings identical to the stored row (not written).
    package var skips = 0
    /// Range lookups against `sensor_readings`; groups outside every sensor's watermark need none.
    package var lookupQueries = 0
    /// Sensors of the batch that already had rows.
    package var sensorsWithRows = 0
    /// Wall-clock seconds of the run.
    package var seconds: Double = 0
    /// Input readings per second.
    package var readingsPerSecond = 0
    /// The conflict report's file name in the run folder.
    package var conflictsFile = DedupeStage.conflictsFile

    /// Creates an empty report.
    package init(runID: String, normalizeRunID: String, env: String, snapshotTakenAt: String, tableExisted: Bool) {
        self.runID = runID
        self.normalizeRunID = normalizeRunID
        self.env = env
        self.snapshotTakenAt = snapshotTakenAt
        self.tableExisted = tableExisted
    }

    /// The manifest's headline counts.
    package var totals: [String: Int] {
        [
            "readingsIn": readingsIn, "duplicatesDropped": duplicatesDropped, "conflicts": conflicts,
            "inserts": inserts, "updates": updates, "skips": skips, "groups": groups, "chunks": chunksWritten,
            "lookupQueries": lookupQueries, "snapshotUnix": snapshotUnix,
        ]
    }
}
