import ArgumentParser
import BEMSCore
import Foundation
import Logging

/// One monitored stage command: the configuration, a logger whose messages the run report also reads (chunk
/// timings, retries), and what the command body records about the run.
package final class StageRun: @unchecked Sendable {
    // @unchecked: used by one command body at a time; the stage gets copies of `config` and `logger`.
    package let stage: Stage
    package let config: PipelineConfig
    package let logger: Logger
    /// The live progress (a redrawn line on a terminal, log lines otherwise, nothing with `--quiet`); the stage's
    /// options take it, and it keeps the chunk timings and peak rates for the run report.
    package let progress: StageProgress
    let sink: RunLogRecorder.Sink
    /// The run's manifest (or the current one when up to date).
    package private(set) var manifest: StageManifest?
    package private(set) var upToDate = false
    /// Load only: the storage pre-flight and the size after the load.
    package var storage: StorageReport?

    init(stage: Stage, config: PipelineConfig, logger: Logger, progressMode: StageProgress.Mode) {
        self.stage = stage
        self.config = config
        let progress = StageProgress(stage: stage.rawValue, mode: progressMode, logger: logger)
        self.progress = progress
        let sink = RunLogRecorder.Sink(progress: progress)
        self.sink = sink
        self.logger = logger.recording(into: sink)
    }

    /// Records what the stage returned.
    package func record(_ manifest: StageManifest?, upToDate: Bool) {
        progress.finish()  // the line ends before the command prints its summary
        self.manifest = manifest
        self.upToDate = upToDate
    }
}

extension CommonOptions {
    /// Runs a stage command like ``runReportingErrors(_:)`` and then publishes the run (``RunMonitor``): the run
    /// report in the run folder (also for a run that threw), the textfile metrics, the Pushgateway, alerts and
    /// Sentry. Monitoring never changes the exit status. A configuration that cannot be read (exit 64) is only
    /// printed.
    package func runMonitored(_ stage: Stage, _ body: (StageRun) async throws -> ExitStatus) async throws {
        let started = Date()
        try await runReportingErrors {
            let (config, logger) = try prepare(stage: stage.rawValue)
            let work = WorkDir(root: config.workDir)
            let before = Set(work.runIDs(stage))
            let mode = StageProgress.mode(
                quiet: quiet, isTerminal: StageProgress.stderrIsTerminal, every: config.monitoring.progressSeconds)
            let run = StageRun(stage: stage, config: config, logger: logger, progressMode: mode)
            let status: ExitStatus
            run.progress.start()
            do {
                status = try await body(run)
                run.progress.finish()
            } catch {
                run.progress.finish()
                await publishFailure(run, error: error, before: before, started: started)
                throw error
            }
            await publish(run, status: status, started: started)
            return status
        }
    }

    func monitor(_ config: PipelineConfig) -> RunMonitor {
        let variables =
            (try? EnvironmentFile.merged(env: env)) ?? ProcessInfo.processInfo.environment
        var secrets: [String] = []
        if let name = config.environments[env]?.databaseURLEnv, let url = variables[name], !url.isEmpty {
            secrets = SecretScrubber.secrets(ofConninfo: url)
        }
        return RunMonitor(config: config, env: env, variables: variables, secrets: secrets)
    }

    func publish(_ run: StageRun, status: ExitStatus, started: Date) async {
        let monitor = monitor(run.config)
        let observations = run.sink.observations
        guard let manifest = run.manifest else {
            if status != .ok {
                await publishFailure(
                    run, error: PipelineError(status, "\(run.stage.rawValue) exited \(status.rawValue)"),
                    before: nil, started: started)
            }
            return
        }
        let work = WorkDir(root: run.config.workDir)
        var report: RunReport
        if run.upToDate {
            report =
                (try? AtomicFile.readJSON(
                    RunReport.self, from: work.runDirectory(run.stage, manifest.runID) + "/" + RunReport.fileName))
                ?? RunReport.fromManifest(manifest, work: work)
            if status != .ok {
                report = RunReport.make(
                    manifest: manifest, work: work, observations: observations, exitStatus: status, startedAt: started,
                    finishedAt: Date())
            }
        } else {
            report = RunReport.make(
                manifest: manifest, work: work, observations: observations, exitStatus: status, startedAt: started,
                finishedAt: Date())
            report.storage = run.storage
            report.bandwidth = bandwidth(run)
        }
        _ = await monitor.publish(
            &report, chunkSeconds: run.upToDate ? [] : observations.chunkSeconds, upToDate: run.upToDate,
            logger: run.logger)
    }

    /// Publishes a run that threw (or ended without a manifest): its report goes to `<stage>/failed/<run>/`, under
    /// the id of the run folder the stage left (if any), else a new id; nothing is added to `runs/`.
    func publishFailure(_ run: StageRun, error: any Error, before: Set<String>?, started: Date) async {
        let monitor = monitor(run.config)
        let work = WorkDir(root: run.config.workDir)
        let created = work.runIDs(run.stage).filter { id in
            !(before?.contains(id) ?? true)
                && !FileManager.default.fileExists(atPath: work.manifestPath(run.stage, id))
        }
        let runID = created.last ?? WorkDir.newRunID(now: started)
        var report = RunReport.failed(
            stage: run.stage, env: env, runID: runID, error: error, exitStatus: exitStatus(of: error),
            observations: run.sink.observations, startedAt: started, finishedAt: Date(), secrets: monitor.allSecrets)
        report.storage = run.storage
        report.bandwidth = bandwidth(run)
        _ = await monitor.publish(&report, chunkSeconds: run.sink.observations.chunkSeconds, logger: run.logger)
    }

    /// Load only: its peak rates against the environment's rate limits.
    func bandwidth(_ run: StageRun) -> BandwidthReport? {
        guard run.stage == .load, let settings = run.config.environments[env] else { return nil }
        return BandwidthReport(limits: settings.rateLimit, progress: run.progress)
    }
}

/// The exit status ``runReportingErrors(_:)`` gives `error`.
func exitStatus(of error: any Error) -> ExitStatus {
    switch error {
    case let e as any ExitCodeError: return e.exitStatus
    case let e as ExitCode: return ExitStatus(rawValue: e.rawValue) ?? .unexpected
    case is ValidationError: return .usage
    default: return .unexpected
    }
}
