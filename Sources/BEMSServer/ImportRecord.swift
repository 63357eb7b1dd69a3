import BEMSCore
import Foundation

/// One import started through the admin API: the stages it runs, where it is, and what each stage did. Kept in memory
/// for the recent imports and written to `<workDir>/serve/imports/<id>.json` at every change, so a restarted server
/// (or one whose database is down) still answers for it.
package struct ImportRecord: Codable, Equatable, Sendable {
    /// Where an import or one of its steps is.
    package enum State: String, Codable, Sendable {
        /// Not started yet (a step after the current one).
        case pending
        case running
        case succeeded
        /// The stage found nothing to do (exit 0 without a new run).
        case upToDate = "up_to_date"
        case failed
        /// Not run because an earlier stage failed.
        case skipped
        /// The server stopped while the import ran.
        case interrupted
    }

    /// One stage of the import.
    package struct Step: Codable, Equatable, Sendable {
        package var stage: Stage
        package var state: State = .pending
        package var exitStatus: Int32?
        package var startedAt: String?
        package var finishedAt: String?
        package var seconds: Double?
        /// The run the stage made (or, up to date, its current run).
        package var runID: String?
        /// The stage's run report (rows, errors, chunk timings, failure), when it wrote one.
        package var report: RunReport?
        /// While it runs: the last line the stage logged (a progress line while it loads), without secrets.
        package var progress: String?
        /// The stage's log (stdout and stderr), relative to the work dir.
        package var log: String?

        package init(stage: Stage) { self.stage = stage }
    }

    package var formatVersion = 1
    package var id: String
    package var env: String
    package var stages: [Stage]
    /// The day sample passed to the stages (`--sample`), when the request gave one.
    package var sample: Double?
    package var state: State
    /// The stage running now.
    package var currentStage: Stage?
    package var startedAt: String
    package var finishedAt: String?
    package var seconds: Double?
    package var steps: [Step]
    /// Why the import failed, without secrets.
    package var error: String?

    package init(id: String, env: String, stages: [Stage], sample: Double?, startedAt: Date) {
        self.id = id
        self.env = env
        self.stages = stages
        self.sample = sample
        state = .running
        self.startedAt = RunReport.timestamp(startedAt)
        steps = stages.map(Step.init(stage:))
    }

    /// Whether the import has ended.
    package var isFinished: Bool { state != .running }
}

/// The answer of `GET /admin/import/status`.
package struct ImportStatus: Codable, Sendable {
    package var env: String
    /// The import running now for the environment.
    package var current: ImportRecord?
    /// The recent imports of the environment, newest first.
    package var recent: [ImportRecord]
    /// The latest stage runs in the work dir (`bems report`'s run reports), oldest first within a stage.
    package var runs: [RunReport]
}
