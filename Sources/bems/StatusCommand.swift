import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems status`: each stage's last run and whether it is up to date.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each stage's current run and whether it is up to date.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (config, _) = try common.prepare(stage: "status")
            let stages = PipelineStatus.stages(config: config)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(stages), as: UTF8.self))
                return .ok
            }
            print("work dir: \(config.workDir)   env: \(common.env)")
            print(Table.render(
                header: ["stage", "state", "run", "created", "chunks", "rows", "readings", "runs", "rolled back", "note"],
                rows: stages.map { s in
                    [s.stage.rawValue, s.state, s.runID ?? "-", s.createdAt ?? "-", s.chunks.map(String.init) ?? "-",
                     s.totals?["rows"].map(String.init) ?? "-", s.totals?["readings"].map(String.init) ?? "-",
                     "\(s.runs)", "\(s.rolledBack)", s.reason ?? ""]
                }))
            return .ok
        }
    }
}
