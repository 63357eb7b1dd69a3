import Foundation

/// What a run's log showed besides its manifest: per-chunk timings and retries (see ``RunLogRecorder``).
package struct RunObservations: Sendable, Equatable {
    /// Seconds of each chunk the stage logged (`chunk` and `seconds` metadata).
    package var chunkSeconds: [Double] = []
    /// Transient database errors that were retried.
    package var retries = 0

    package init(chunkSeconds: [Double] = [], retries: Int = 0) {
        self.chunkSeconds = chunkSeconds
        self.retries = retries
    }
}

extension RunReport {
    /// The report of a run that published `manifest`, with the stage's own counts mapped to rows and bytes.
    ///
    /// - Parameters:
    ///   - manifest: The run's manifest (its totals become ``figures``).
    ///   - work: The work dir, to read the stage's `report.json` (validate's reject codes) and upstream manifests.
    ///   - exitStatus: The status the command exits with; a non-zero status makes the run `failed` (validate over
    ///     its threshold, load's verify mismatch).
    package static func make(
        manifest: StageManifest, work: WorkDir, observations: RunObservations, exitStatus: ExitStatus,
        startedAt: Date, finishedAt: Date
    ) -> RunReport {
        var r = RunReport(
            stage: manifest.stage, runID: manifest.runID, env: manifest.env,
            status: exitStatus == .ok ? .succeeded : .failed, exitStatus: exitStatus.rawValue, startedAt: startedAt,
            finishedAt: finishedAt)
        r.figures = manifest.totals
        r.retries = observations.retries
        r.chunks = ChunkTimings(observations.chunkSeconds)
        let t = manifest.totals
        switch manifest.stage {
        case .validate:
            r.rowsIn = t["rows", default: 0]
            r.rowsOut = t["readings", default: 0]
            r.rowsRejected = t["rejectedRecords", default: 0]
            r.bytesIn = t["bytes", default: 0]
            if let report = try? AtomicFile.readJSON(
                ValidationReport.self, from: work.runDirectory(.validate, manifest.runID) + "/report.json")
            {
                for file in report.files {
                    for (code, n) in file.rejectedRows { r.errors[code, default: 0] += n }
                    for (code, n) in file.rejectedCells { r.errors[code, default: 0] += n }
                    if file.headerError != nil { r.errors["header", default: 0] += 1 }
                }
            }
        case .normalize:
            r.rowsOut = t["readings", default: 0]
            r.rowsIn = r.rowsOut + (manifest.sample?.readingsSkipped ?? 0)
            r.bytesIn = t["inputBytes", default: 0]
            r.bytesOut = t["bytes", default: 0]
        case .dedupe:
            r.rowsIn = t["readingsIn", default: 0]
            r.rowsOut = t["inserts", default: 0] + t["updates", default: 0]
            r.bytesOut = manifest.chunks.reduce(0) { $0 + $1.bytes }
            r.bytesIn = upstreamBytes(manifest, work: work)
        case .load:
            r.rowsOut = t["inserted", default: 0] + t["updated", default: 0]
            if let dedupe = manifest.upstreamRunID.flatMap({ try? work.manifest(.dedupe, $0) }) {
                r.rowsIn = dedupe.chunks.reduce(0) { $0 + ($1.inserts ?? 0) + ($1.updates ?? 0) }
                r.bytesIn = dedupe.chunks.reduce(0) { $0 + $1.bytes }
            }
            if r.chunks == nil, let ms = t["maxChunkMilliseconds"], t["chunksLoaded", default: 0] > 0 {
                // No per-chunk log: the manifest still knows the slowest chunk.
                let s = Double(ms) / 1000
                r.chunks = ChunkTimings(
                    count: t["chunksLoaded", default: 0], p50Seconds: s, p95Seconds: s, maxSeconds: s)
            }
        case .refresh:
            r.rowsOut = t["aggregateRows", default: 0]
        }
        if exitStatus != .ok {
            let failure = returnedFailure(manifest, exitStatus: exitStatus, report: r)
            r.failure = failure
            if r.errors.isEmpty { r.errors[failure.code] = 1 }
        }
        return r
    }

    /// The report of a run that threw before publishing anything.
    package static func failed(
        stage: Stage, env: String, runID: String, error: any Error, exitStatus: ExitStatus,
        observations: RunObservations,
        startedAt: Date, finishedAt: Date, secrets: [String] = []
    ) -> RunReport {
        var r = RunReport(
            stage: stage, runID: runID, env: env, status: .failed, exitStatus: exitStatus.rawValue,
            startedAt: startedAt, finishedAt: finishedAt)
        r.retries = observations.retries
        r.chunks = ChunkTimings(observations.chunkSeconds)
        let failure = FailureClassifier.classify(error, stage: stage, exitStatus: exitStatus, secrets: secrets)
        r.failure = failure
        r.errors[failure.code] = 1
        return r
    }

    private static func upstreamBytes(_ manifest: StageManifest, work: WorkDir) -> Int {
        guard let up = manifest.stage.upstream, let id = manifest.upstreamRunID,
            let m = try? work.manifest(up, id)
        else { return 0 }
        return m.chunks.reduce(0) { $0 + $1.bytes }
    }

    /// The failure of a run that finished but exits non-zero (validate over its threshold, verify mismatch).
    private static func returnedFailure(_ m: StageManifest, exitStatus: ExitStatus, report: RunReport) -> Failure {
        switch m.stage {
        case .validate:
            let failed = m.totals["failedFiles", default: 0]
            return Failure(
                code: exitStatus.name, operation: "parse", sqlState: nil,
                message:
                    "\(failed) of \(m.totals["files", default: 0]) files failed validation (header error or rejected "
                    + "share over the threshold); \(report.rowsRejected) of \(report.rowsIn) rows rejected")
        case .load:
            return Failure(
                code: exitStatus.name, operation: "verify", sqlState: nil,
                message:
                    "verify found mismatches between sensor_readings and the ledger (verify.json in the run folder)")
        default:
            return Failure(
                code: exitStatus.name, operation: m.stage.rawValue, sqlState: nil,
                message: "\(m.stage.rawValue) finished with exit status \(exitStatus.rawValue)")
        }
    }
}

extension RunReport {
    /// A report reconstructed from a manifest alone, for runs that have no `run-report.json` (made by the stage
    /// libraries directly, or before run reports existed).
    package static func fromManifest(_ m: StageManifest, work: WorkDir) -> RunReport {
        let started = RunReport.date(m.createdAt) ?? Date(timeIntervalSince1970: 0)
        var r = make(
            manifest: m, work: work, observations: RunObservations(), exitStatus: m.passed ? .ok : .dataError,
            startedAt: started, finishedAt: started.addingTimeInterval(m.seconds))
        r.seconds = m.seconds
        return r
    }
}
