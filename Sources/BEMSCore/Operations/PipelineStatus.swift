import Foundation

/// The state of each stage, as `bems status` shows it.
package struct StageStatus: Codable, Equatable, Sendable {
    package var stage: Stage
    /// The current run, if any.
    package var runID: String?
    package var createdAt: String?
    /// `up-to-date`, `stale`, `never-run`, or `failed`.
    package var state: String
    /// Why it is stale, when it is.
    package var reason: String?
    package var chunks: Int?
    package var totals: [String: Int]?
    package var passed: Bool?
    /// Runs kept in the work dir, and how many were rolled back.
    package var runs: Int
    package var rolledBack: Int
}

/// Computes stage states from the work dir and the current inputs and settings.
package enum PipelineStatus {
    /// Status of the parsing stages (validate, normalize); later stages add theirs.
    package static func stages(config: PipelineConfig, inputs: [String] = []) -> [StageStatus] {
        let work = WorkDir(root: config.workDir)
        let hashed = try? HashedInput.resolve(arguments: inputs, config: config, workDir: work)
        var result: [StageStatus] = []
        var upstreamFresh = true
        for stage in [Stage.validate, .normalize] {
            var status = StageStatus(
                stage: stage, state: "never-run", runs: work.runIDs(stage).count,
                rolledBack: work.rolledBackRunIDs(stage).count)
            guard let manifest = try? work.currentManifest(stage) else {
                upstreamFresh = false
                result.append(status)
                continue
            }
            status.runID = manifest.runID
            status.createdAt = manifest.createdAt
            status.totals = manifest.totals
            status.passed = manifest.passed
            status.chunks = stage == .validate ? nil : manifest.chunks.count
            let expected: String?
            switch stage {
            case .validate:
                expected = hashed.map { ValidateStage.makeFingerprint($0.map { ($0.file, $0.sha256) }, config: config) }
            default:
                expected = hashed.map {
                    Fingerprint.make(.normalize, [config.parsingFingerprint, config.chunkingFingerprint] + $0.map(\.fingerprintLine))
                }
            }
            if expected == nil {
                status.state = "stale"
                status.reason = "inputs not readable"
            } else if expected != manifest.fingerprint {
                status.state = "stale"
                status.reason = "inputs or settings changed since this run"
            } else if !upstreamFresh {
                status.state = "stale"
                status.reason = "an upstream stage is stale"
            } else if !manifest.passed {
                status.state = "failed"
            } else {
                status.state = "up-to-date"
            }
            upstreamFresh = upstreamFresh && status.state == "up-to-date"
            result.append(status)
        }
        return result
    }
}
