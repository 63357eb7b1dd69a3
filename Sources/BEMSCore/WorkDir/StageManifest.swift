/// The stages of the pipeline, in order.
package enum Stage: String, CaseIterable, Codable, Sendable {
    case validate, normalize, dedupe, load, refresh

    /// The stage whose output this one reads.
    package var upstream: Stage? {
        switch self {
        case .validate: return nil
        case .normalize: return .validate
        case .dedupe: return .normalize
        case .load: return .dedupe
        case .refresh: return .load
        }
    }

    /// Bumped when a stage's output for the same input changes, so make-style reruns notice.
    package var logicVersion: Int { 1 }
}

/// An input file as recorded by a run: enough to know later whether it changed.
package struct InputRecord: Codable, Equatable, Sendable {
    package var path: String
    package var name: String
    package var floor: Int
    package var sha256: String
    package var bytes: Int
}

/// A chunk file written by a run.
package struct ChunkRecord: Codable, Equatable, Sendable {
    /// Path relative to the run folder, e.g. `chunks/f3-2019-03-04-s0-0.bemc`.
    package var file: String
    package var sha256: String
    package var bytes: Int
    package var rows: Int
    /// Unix seconds (UTC) of the first and last reading.
    package var minTimestamp: Int64
    package var maxTimestamp: Int64
    package var floor: Int
    /// First local day (`YYYY-MM-DD`) the chunk covers.
    package var day: String
    /// The input file the readings came from.
    package var source: String
    /// Dedupe output only: readings to insert, update, and readings skipped as unchanged.
    package var inserts: Int?
    package var updates: Int?
    package var skips: Int?
}

/// The record of one stage run, written atomically as `manifest.json` in the run folder.
///
/// A stage never overwrites an earlier run's folder; `<stage>/CURRENT` names the run later stages use, and rollback
/// moves it back to ``previousRunID``.
package struct StageManifest: Codable, Equatable, Sendable {
    package var formatVersion = 1
    package var stage: Stage
    package var runID: String
    /// The run that was current before this one (the rollback target).
    package var previousRunID: String?
    package var createdAt: String
    package var bemsVersion: String
    package var env: String
    /// Hash of everything the output depends on: inputs, settings, stage logic, upstream output.
    package var fingerprint: String
    /// The upstream run this one read.
    package var upstreamRunID: String?
    package var inputs: [InputRecord]
    package var chunks: [ChunkRecord]
    /// Whether the stage's checks passed (validate: rejected share within the threshold).
    package var passed: Bool
    /// Headline counts for status displays (rows, readings, rejected, …).
    package var totals: [String: Int]
    /// Seconds the run took.
    package var seconds: Double
    /// Normalize only: the day sample applied (absent in runs that kept every day before sampling existed).
    package var sample: SampleRecord? = nil
}

/// What a normalize run sampled: the fraction and the whole local days kept.
package struct SampleRecord: Codable, Equatable, Sendable {
    /// Share of days kept (1.0 = everything).
    package var fraction: Double
    /// Distinct local days seen in the inputs, and how many of them were kept.
    package var daysSeen: Int
    package var daysKept: Int
    /// Readings of the days left out.
    package var readingsSkipped: Int
}
