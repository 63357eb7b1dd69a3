import Foundation
import Logging

/// The normalize stage: turns validated wide CSV rows into long readings in checksummed columnar chunk files.
///
/// A chunk holds one floor and `chunk.days` local days (default one floor-day, about 40 000 readings), capped at
/// `chunk.maxRows`, so the load stage can load each chunk in one short transaction. Rejected rows and cells are
/// skipped: they are in validate's dead-letter file.
package enum NormalizeStage {
    package struct Options: Sendable {
        package var config: PipelineConfig
        package var env: String
        package var inputs: [String] = []
        package var force = false
        /// Share of days to keep; `nil` takes the environment's `sample` (dev and staging 0.1, prod 1.0).
        package var sample: Double?

        /// Live progress and chunk timings (``StageProgress``); silent unless the command gives one.
        package var progress = StageProgress.silent

        package init(config: PipelineConfig, env: String) {
            self.config = config
            self.env = env
        }

        /// The day sample this run applies.
        package var daySample: DaySample {
            DaySample(fraction: sample ?? config.environments[env]?.sample ?? 1)
        }
    }

    package struct Result: Sendable {
        package var manifest: StageManifest
        package var upToDate: Bool
        package var runDirectory: String
    }

    /// Runs the stage.
    ///
    /// - Throws: ``PipelineError`` 66 when an input has not been validated (or changed since), 65 when its
    ///   validation failed.
    package static func run(_ options: Options, logger: Logger) async throws -> Result {
        let config = options.config
        let work = WorkDir(root: config.workDir)
        let lock = try WorkDirLock(directory: work.root)
        defer { withExtendedLifetime(lock) {} }
        let inputs = try HashedInput.resolve(arguments: options.inputs, config: config, workDir: work)
        let validation = try checkValidated(inputs, work: work)
        let sample = options.daySample
        let fingerprint = makeFingerprint(inputs, config: config, sample: sample)

        if !options.force, let current = try work.currentManifest(.normalize), current.fingerprint == fingerprint,
            work.staleReason(.normalize, current.runID) == nil
        {
            logger.info("normalize is up to date", metadata: ["run": "\(current.runID)"])
            return Result(manifest: current, upToDate: true, runDirectory: work.runDirectory(.normalize, current.runID))
        }

        let started = Date()
        let runID = try work.createRun(.normalize)
        let runDir = work.runDirectory(.normalize, runID)
        // A failure (disk full, read-only, I/O) leaves no run folder behind; a kill leaves one without a manifest.
        var published = false
        defer { if !published { work.discardRun(.normalize, runID) } }
        try AtomicFile.makeDirectory(runDir + "/chunks")
        logger.info("normalize started", metadata: ["run": "\(runID)", "files": "\(inputs.count)"])

        let progress = options.progress
        progress.begin(total: .bytes(inputs.reduce(0) { $0 + $1.bytes }))
        let perFile = try await parallelMap(count: inputs.count) { index in
            try normalizeFile(
                inputs[index], index: index, config: config, sample: sample, runID: runID, runDirectory: runDir,
                progress: progress)
        }
        // One flush for all chunk files before the manifest that names them is published.
        AtomicFile.syncFileSystem(containing: runDir + "/chunks")
        var chunks = perFile.flatMap(\.chunks)
        chunks.sort { ($0.floor, $0.day, $0.file) < ($1.floor, $1.day, $1.file) }
        var totals: [String: Int] = ["files": inputs.count, "chunks": chunks.count]
        totals["readings"] = chunks.reduce(0) { $0 + $1.rows }
        totals["bytes"] = chunks.reduce(0) { $0 + $1.bytes }
        totals["inputBytes"] = inputs.reduce(0) { $0 + $1.bytes }
        totals["anomalies"] = perFile.reduce(0) { $0 + $1.anomalies }
        let sampleRecord = SampleRecord(
            fraction: sample.fraction,
            daysSeen: perFile.reduce(into: Set<Int>()) { $0.formUnion($1.daysSeen) }.count,
            daysKept: perFile.reduce(into: Set<Int>()) { $0.formUnion($1.daysKept) }.count,
            readingsSkipped: perFile.reduce(0) { $0 + $1.readingsSkipped })
        let manifest = StageManifest(
            stage: .normalize, runID: runID, previousRunID: work.currentRunID(.normalize),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: fingerprint, upstreamRunID: validation.runID,
            inputs: inputs.map {
                InputRecord(
                    path: $0.file.path, name: $0.file.name, floor: $0.file.floor, sha256: $0.sha256, bytes: $0.bytes)
            },
            chunks: chunks, passed: true, totals: totals, seconds: Date().timeIntervalSince(started),
            sample: sampleRecord)
        try work.publish(manifest)
        published = true
        logger.notice(
            "normalize finished",
            metadata: [
                "run": "\(runID)", "chunks": "\(chunks.count)", "rows.out": "\(totals["readings"]!)",
                "bytes": "\(totals["bytes"]!)", "seconds": "\(String(format: "%.2f", manifest.seconds))",
                "sample": "\(sample.fraction)", "days.kept": "\(sampleRecord.daysKept)/\(sampleRecord.daysSeen)",
            ])
        return Result(manifest: manifest, upToDate: false, runDirectory: runDir)
    }

    /// The fingerprint of a normalize run over `inputs` (also used by `bems status`).
    static func makeFingerprint(_ inputs: [HashedInput], config: PipelineConfig, sample: DaySample) -> String {
        // A complete sample adds nothing, so runs from before sampling existed stay up to date.
        let sampleLine = sample.isComplete ? [] : ["sample=\(sample.fraction)"]
        return Fingerprint.make(
            .normalize,
            [config.parsingFingerprint, config.chunkingFingerprint] + sampleLine + inputs.map(\.fingerprintLine))
    }

    /// Checks that validate's current run covers every input with the same content and passed.
    static func checkValidated(_ inputs: [HashedInput], work: WorkDir) throws -> StageManifest {
        guard let validation = try work.currentManifest(.validate) else {
            throw PipelineError.noInput("no validate run in \(work.root): run bems-validate (or make validate) first")
        }
        let report = try? AtomicFile.readJSON(
            ValidationReport.self, from: work.runDirectory(.validate, validation.runID) + "/report.json")
        for input in inputs {
            guard let record = validation.inputs.first(where: { $0.path == input.file.path }),
                record.sha256 == input.sha256
            else {
                throw PipelineError.noInput(
                    "\(input.file.path) has not been validated, or changed since validate run \(validation.runID): "
                        + "run bems-validate first")
            }
            if let file = report?.files.first(where: { $0.path == input.file.path }), !file.passed {
                throw PipelineError.data(
                    "\(input.file.path) failed validation in run \(validation.runID) "
                        + (file.headerError ?? "(rejected share \(file.rejectedShare) over the threshold)")
                        + "; see its dead-letter file")
            }
        }
        return validation
    }

    struct FileOutcome: Sendable {
        var chunks: [ChunkRecord]
        var anomalies: Int
        var daysSeen: Set<Int> = []
        var daysKept: Set<Int> = []
        var readingsSkipped = 0
    }

    /// Appends a row's readings to a chunk; returns how many are anomalies. A separate function so the row loop
    /// holds one exclusive access to the chunk instead of one per reading (measured in the normalize profile).
    static func appendReadings(of row: borrowing ParsedRow, to builder: inout ChunkData) -> Int {
        var anomalies = 0
        let time = row.utcTime
        for column in 0..<row.kinds.count {
            switch row.kinds[column] {
            case .normal:
                builder.append(sensorIndex: UInt32(column), timestamp: time, value: row.values[column], status: .normal)
            case .anomaly:
                anomalies += 1
                builder.append(
                    sensorIndex: UInt32(column), timestamp: time, value: row.values[column], status: .anomaly)
            case .missing, .rejected:
                continue
            }
        }
        return anomalies
    }

    /// Normalizes one file into chunk files, streaming: one chunk in memory at a time.
    static func normalizeFile(
        _ input: HashedInput, index: Int, config: PipelineConfig, sample: DaySample, runID: String,
        runDirectory: String, progress: StageProgress? = nil
    ) throws -> FileOutcome {
        var chunks: [ChunkRecord] = []
        var anomalies = 0
        var daysSeen = Set<Int>()
        var daysKept = Set<Int>()
        var readingsSkipped = 0
        var lastDay = Int.min
        var lastDayKept = true
        var builder = ChunkData()
        var builderKey = Int64.min
        var builderDay = 0
        var sequence = 0
        let daysPerChunk = Int64(config.chunk.days)
        var chunkStarted = DispatchTime.now().uptimeNanoseconds

        func flush() throws {
            guard builder.count > 0 else { return }
            let day = TimestampParser.formatDay(builderDay)
            let name = "chunks/f\(input.file.floor)-\(day)-s\(index)-\(sequence).bemc"
            sequence += 1
            builder.metadata = [
                "floor": "\(input.file.floor)", "day": day, "source": input.file.name, "sourceSHA256": input.sha256,
                "stage": "normalize", "run": runID,
            ]
            let bytes = try ChunkWriter.encode(builder, level: Int32(config.chunk.zstdLevel))
            try ChunkFile.write(bytes, to: runDirectory + "/" + name, durable: false)
            chunks.append(
                ChunkRecord(
                    file: name, sha256: Digest.sha256Hex(bytes), bytes: bytes.count, rows: builder.count,
                    minTimestamp: builder.timestamps.min()!, maxTimestamp: builder.timestamps.max()!,
                    floor: input.file.floor, day: day, source: input.file.name))
            let sensors = builder.sensorIDs
            builder = ChunkData(sensorIDs: sensors)
            builder.reserveCapacity(50_000)
            // A chunk's seconds: parsing its rows (and any left-out days before them), encoding and writing it.
            let now = DispatchTime.now().uptimeNanoseconds
            progress?.recordChunk(seconds: Double(now - chunkStarted) / 1e9)
            chunkStarted = now
        }

        do {
            _ = try FloorFileScanner.scan(
                input.file, config: config, progress: progress,
                header: { layout in
                    builder.sensorIDs = layout.columns.map(\.sensorID)
                    builder.reserveCapacity(50_000)
                }
            ) { row, _ in
                guard row.rowError == nil, row.readings > 0 else { return }
                let day = Int(row.localTime >= 0 ? row.localTime / 86_400 : (row.localTime - 86_399) / 86_400)
                if day != lastDay {  // rows come in time order: one hash per day, not per row
                    lastDay = day
                    lastDayKept = sample.includes(day: day)
                    daysSeen.insert(day)
                    if lastDayKept { daysKept.insert(day) }
                }
                guard lastDayKept else {
                    readingsSkipped += row.readings
                    return
                }
                let key = Int64(day) >= 0 ? Int64(day) / daysPerChunk : (Int64(day) - daysPerChunk + 1) / daysPerChunk
                if key != builderKey || builder.count + row.readings > config.chunk.maxRows {
                    try flush()
                    builderKey = key
                    builderDay = day
                }
                anomalies += appendReadings(of: row, to: &builder)
            }
            try flush()
        } catch let failure as HeaderFailure {
            throw PipelineError.data(failure.diagnostic.description)
        }
        return FileOutcome(
            chunks: chunks, anomalies: anomalies, daysSeen: daysSeen, daysKept: daysKept,
            readingsSkipped: readingsSkipped)
    }
}
