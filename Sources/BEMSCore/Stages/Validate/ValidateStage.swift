import Foundation
import Logging

/// The validate stage: streams every input, checks every cell, and writes a report and a dead-letter file.
///
/// It writes no readings: normalize parses the files again with the same parser (about 1 s per 100 MB), which keeps
/// validate's output small and lets the two stages be rerun independently.
package enum ValidateStage {
    /// What a validate invocation was asked to do.
    package struct Options: Sendable {
        package var config: PipelineConfig
        package var env: String
        /// Command-line inputs; when non-empty they replace the configured sources.
        package var inputs: [String] = []
        package var force = false
        /// Diagnostics kept for stderr (all of them go to the dead-letter file).
        package var maxDiagnostics = 20

        /// Live progress and chunk timings (``StageProgress``); silent unless the command gives one.
        package var progress = StageProgress.silent

        package init(config: PipelineConfig, env: String) {
            self.config = config
            self.env = env
        }
    }

    /// The outcome.
    package struct Result: Sendable {
        package var manifest: StageManifest
        package var report: ValidationReport
        /// True when the inputs and settings were unchanged and nothing ran.
        package var upToDate: Bool
        /// The first diagnostics, for stderr.
        package var diagnostics: [Diagnostic]
        /// 0, or 65 when a file failed its header or threshold.
        package var exitStatus: ExitStatus
        package var runDirectory: String
    }

    /// Runs the stage.
    package static func run(_ options: Options, logger: Logger) async throws -> Result {
        let config = options.config
        let work = WorkDir(root: config.workDir)
        let lock = try WorkDirLock(directory: work.root)
        defer { withExtendedLifetime(lock) {} }
        let inputs = try InputFile.resolve(arguments: options.inputs, config: config)
        var cache = InputHashCache(workDir: work)
        // Up-to-date check from cached hashes only: a file whose size or mtime changed is scanned (and hashed on the
        // way) anyway, so it is never read twice.
        let cached = inputs.compactMap { input in cache.cached(input.path).map { (input, $0) } }
        if !options.force, cached.count == inputs.count, let current = try work.currentManifest(.validate),
            current.fingerprint == makeFingerprint(cached, config: config)
        {
            let dir = work.runDirectory(.validate, current.runID)
            let report = try AtomicFile.readJSON(ValidationReport.self, from: dir + "/report.json")
            logger.info("validate is up to date", metadata: ["run": "\(current.runID)"])
            return Result(
                manifest: current, report: report, upToDate: true, diagnostics: [],
                exitStatus: current.passed ? .ok : .dataError, runDirectory: dir)
        }

        let started = Date()
        let runID = try work.createRun(.validate)
        let runDir = work.runDirectory(.validate, runID)
        // A failure (disk full, read-only, I/O) leaves no run folder behind; a kill leaves one without a manifest.
        var published = false
        defer { if !published { work.discardRun(.validate, runID) } }
        try AtomicFile.makeDirectory(runDir + "/parts")
        logger.info("validate started", metadata: ["run": "\(runID)", "files": "\(inputs.count)"])

        let maxDiagnostics = options.maxDiagnostics
        let progress = options.progress
        progress.begin(total: .bytes(inputs.reduce(0) { $0 + InputFile.size($1.path) }))
        let results = try await parallelMap(count: inputs.count) { index in
            try validateFile(
                inputs[index], config: config, deadLetters: "\(runDir)/parts/\(index).jsonl",
                maxDiagnostics: maxDiagnostics, progress: progress)
        }

        // One dead-letter file, in input order.
        let deadLetterPath = runDir + "/dead-letter.jsonl"
        guard FileManager.default.createFile(atPath: deadLetterPath, contents: nil),
            let out = FileHandle(forWritingAtPath: deadLetterPath)
        else { throw PipelineError.io("\(deadLetterPath): cannot create") }
        do {
            for index in inputs.indices {
                let part = "\(runDir)/parts/\(index).jsonl"
                if let data = FileManager.default.contents(atPath: part), !data.isEmpty {
                    try out.write(contentsOf: data)
                }
            }
            try out.synchronize()
            try out.close()
        } catch {
            try? out.close()
            throw PipelineError.io("\(deadLetterPath): cannot write (\(AtomicFile.reason(error)))")
        }
        try? FileManager.default.removeItem(atPath: runDir + "/parts")

        for (input, outcome) in zip(inputs, results) where !outcome.report.sha256.isEmpty {
            cache.record(input.path, sha256: outcome.report.sha256)
        }
        cache.save()

        let files = results.map(\.report)
        let report = ValidationReport(runID: runID, env: options.env, threshold: config.rejectThreshold, files: files)
        try AtomicFile.writeJSON(report, to: runDir + "/report.json")
        let finalHashes = zip(inputs, files).map { ($0, $1.sha256.isEmpty ? "unreadable" : $1.sha256) }
        let manifest = StageManifest(
            stage: .validate, runID: runID, previousRunID: work.currentRunID(.validate),
            createdAt: ISO8601DateFormatter().string(from: started), bemsVersion: BEMS.version, env: options.env,
            fingerprint: makeFingerprint(finalHashes, config: config), upstreamRunID: nil,
            inputs: zip(inputs, files).map {
                InputRecord(path: $0.path, name: $0.name, floor: $0.floor, sha256: $1.sha256, bytes: $1.bytes)
            },
            chunks: [], passed: report.passed, totals: report.totals,
            seconds: Date().timeIntervalSince(started))
        try work.publish(manifest)
        published = true
        let diagnostics = Array(results.flatMap(\.diagnostics).prefix(options.maxDiagnostics))
        logger.notice(
            "validate finished",
            metadata: [
                "run": "\(runID)", "rows": "\(report.totals["rows"] ?? 0)",
                "rows.rejected": "\(report.totals["rejectedRecords"] ?? 0)",
                "seconds": "\(String(format: "%.2f", manifest.seconds))",
            ])
        return Result(
            manifest: manifest, report: report, upToDate: false, diagnostics: diagnostics,
            exitStatus: report.passed ? .ok : .dataError, runDirectory: runDir)
    }

    static func makeFingerprint(_ inputs: [(InputFile, String)], config: PipelineConfig) -> String {
        Fingerprint.make(.validate, [config.parsingFingerprint] + inputs.map { "\($0.0.path)|\($0.0.floor)|\($0.1)" })
    }

    struct FileOutcome: Sendable {
        var report: FileReport
        var diagnostics: [Diagnostic]
    }

    /// Validates one file, streaming; memory does not grow with the file.
    static func validateFile(
        _ input: InputFile, config: PipelineConfig, deadLetters: String, maxDiagnostics: Int,
        progress: StageProgress? = nil
    ) throws -> FileOutcome {
        var report = FileReport(file: input.name, path: input.path, floor: input.floor)
        var diagnostics: [Diagnostic] = []
        let writer = try DeadLetterWriter(path: deadLetters)
        var minutes = MinuteSet()
        var firstLocal: Int64?
        var lastLocal: Int64 = .min
        var minLocal: Int64 = .max
        var maxLocal: Int64 = .min

        func reject(_ error: CellError, _ line: Line) throws {
            try writer.append(file: input.name, line: line, error: error)
            if diagnostics.count < maxDiagnostics {
                diagnostics.append(
                    Diagnostic(
                        code: error.code, file: input.name, line: line.number, column: error.column,
                        message: error.message))
            }
        }

        do {
            let scanned = try FloorFileScanner.scan(input, config: config, progress: progress) { row, line in
                report.rows += 1
                if let error = row.rowError {
                    report.rejectedRows[error.code.rawValue, default: 0] += 1
                    report.rejectedRecords += 1
                    try reject(error, line)
                    return
                }
                report.readings += row.readings
                report.emptyCells += row.missing
                report.nanCells += row.nanCells
                if row.readings == 0 && row.cellErrors.isEmpty { report.allEmptyRows += 1 }
                if !row.cellErrors.isEmpty {
                    report.rejectedRecords += 1
                    for error in row.cellErrors {
                        report.rejectedCells[error.code.rawValue, default: 0] += 1
                        try reject(error, line)
                    }
                }
                if row.readings > 0 {
                    for kind in row.kinds where kind == .anomaly { report.anomalies += 1 }
                }
                let local = row.localTime
                if firstLocal == nil { firstLocal = local }
                if local < lastLocal { report.backwardSteps += 1 }
                lastLocal = local
                minLocal = min(minLocal, local)
                maxLocal = max(maxLocal, local)
                if !minutes.insert(local >= 0 ? local / 60 : (local - 59) / 60) { report.duplicateTimestamps += 1 }
            }
            report.sha256 = scanned.sha256
            report.bytes = scanned.bytes
            report.hadBOM = scanned.hadBOM
            report.warnings = scanned.layout.warnings
        } catch let failure as HeaderFailure {
            report.headerError = failure.diagnostic.description
            diagnostics.insert(failure.diagnostic, at: 0)
            if let hash = try? Digest.sha256(file: input.path) {
                report.sha256 = hash.hex
                report.bytes = hash.bytes
            }
        }
        try writer.close()
        if minLocal <= maxLocal {
            report.firstTimestamp = TimestampParser.format(localSeconds: minLocal)
            report.lastTimestamp = TimestampParser.format(localSeconds: maxLocal)
            let span = Int((maxLocal / 60) - (minLocal / 60)) + 1
            report.missingMinutes = max(0, span - minutes.count)
        }
        report.rejectedShare = report.rows == 0 ? 0 : Double(report.rejectedRecords) / Double(report.rows)
        report.passed = report.headerError == nil && report.rejectedShare <= config.rejectThreshold
        return FileOutcome(report: report, diagnostics: diagnostics)
    }
}
