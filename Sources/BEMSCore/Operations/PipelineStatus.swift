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
    /// The load stage's last verify result (`passed`, `FAILED`), from `verify.json` in its run folder.
    package var verify: String?
    /// Normalize: the day sample of the current run.
    package var sample: SampleRecord?
}

/// Computes stage states from the work dir and the current inputs and settings.
package enum PipelineStatus {
    /// Status of every stage. The file stages (validate, normalize) are compared with the current inputs and
    /// settings; the database stages with the run their upstream stage has now.
    ///
    /// `env` and `sample` give the day sample normalize would apply now (the environment's, or an override).
    package static func stages(
        config: PipelineConfig, env: String = "dev", sample: Double? = nil, inputs: [String] = []
    ) -> [StageStatus] {
        var normalizeOptions = NormalizeStage.Options(config: config, env: env)
        normalizeOptions.sample = sample
        let work = WorkDir(root: config.workDir)
        let hashed = try? HashedInput.resolve(arguments: inputs, config: config, workDir: work)
        var result: [StageStatus] = []
        var upstreamFresh = true
        for stage in Stage.allCases {
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
            status.sample = manifest.sample
            status.chunks = [.validate, .load, .refresh].contains(stage) ? nil : manifest.chunks.count
            if stage == .load {
                status.verify = verifyResult(work.runDirectory(.load, manifest.runID) + "/verify.json")
            }
            var changed: String?
            switch stage {
            case .validate:
                if let hashed,
                    ValidateStage.makeFingerprint(hashed.map { ($0.file, $0.sha256) }, config: config)
                        != manifest.fingerprint
                {
                    changed = "inputs or settings changed since this run"
                }
            case .normalize:
                if let hashed, NormalizeStage.makeFingerprint(hashed, config: config, sample: normalizeOptions.daySample)
                    != manifest.fingerprint
                {
                    changed = "inputs or settings changed since this run"
                }
            case .dedupe, .load, .refresh:
                let upstream = stage.upstream.flatMap { work.currentRunID($0) }
                if manifest.upstreamRunID != upstream {
                    changed = "\(stage.upstream!.rawValue) has a newer run (\(upstream ?? "none"))"
                }
            }
            if let refused = work.staleReason(stage, manifest.runID) {
                changed = "refused by a later stage (\(refused)); the next run redoes it"
            }
            if hashed == nil, stage == .validate || stage == .normalize {
                status.state = "stale"
                status.reason = "inputs not readable"
            } else if let changed {
                status.state = "stale"
                status.reason = changed
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

    /// `passed` or `FAILED` from a verify report, without depending on its full shape.
    static func verifyResult(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let passed = object["passed"] as? Bool
        else { return nil }
        return passed ? "passed" : "FAILED"
    }
}
