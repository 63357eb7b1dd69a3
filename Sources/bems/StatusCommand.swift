import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems status`: each stage's last run and whether it is up to date.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each stage's current run and whether it is up to date.")

    @OptionGroup var common: CommonOptions

    /// The headline counts of a stage, e.g. `readings 801094` or `inserted 801094 updated 0 verify passed`; a load
    /// that split chunks after statement timeouts adds `splits 3 pieces 31`.
    static func figures(_ s: StageStatus) -> String {
        let keys: [String]
        switch s.stage {
        case .validate: keys = ["rows", "readings", "rejectedRecords"]
        case .normalize: keys = ["readings", "bytes"]
        case .dedupe: keys = ["inserts", "updates", "skips", "conflicts"]
        case .load: keys = ["inserted", "updated", "chunksLoaded"]
        case .refresh: keys = ["refreshMilliseconds", "aggregateRows"]
        }
        var parts = keys.compactMap { key in s.totals?[key].map { "\(key) \($0)" } }
        if s.stage == .load, let splits = s.totals?["splits"], splits > 0 {
            parts.append("splits \(splits) pieces \(s.totals?["pieces"] ?? 0)")
        }
        if let verify = s.verify { parts.append("verify \(verify)") }
        if let sample = s.sample, sample.fraction < 1 {
            parts.append("sample \(sample.fraction): \(sample.daysKept)/\(sample.daysSeen) days")
        }
        return parts.joined(separator: " ")
    }

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (config, _) = try common.prepare(stage: "status")
            let stages = PipelineStatus.stages(config: config, env: common.env, sample: common.sample)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(stages), as: UTF8.self))
                return .ok
            }
            print("work dir: \(config.workDir)   env: \(common.env)")
            print(
                Table.render(
                    header: ["stage", "state", "run", "created", "chunks", "figures", "runs", "rolled back", "note"],
                    rows: stages.map { s in
                        [
                            s.stage.rawValue, s.state, s.runID ?? "-", s.createdAt ?? "-",
                            s.chunks.map(String.init) ?? "-",
                            Self.figures(s), "\(s.runs)", "\(s.rolledBack)", s.reason ?? "",
                        ]
                    }))
            return .ok
        }
    }
}
