import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems report [--json] [--last N]`: the last runs of every stage, from their run reports.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show the last runs of every stage: rows, bytes, seconds, retries, chunk timings, errors, alerts.",
        discussion: """
            Reads <stage>/runs/<run>/run-report.json (runs without one are summarized from their manifest). \
            Exit status: 0, 64 for a bad configuration.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print the reports as JSON on stdout.")
    var json = false

    @Option(help: "Runs shown per stage.")
    var last = 5

    func validate() throws {
        guard last >= 1 else { throw ValidationError("--last must be 1 or more") }
    }

    func run() async throws {
        try await runReportingErrors {
            let (config, _) = try common.prepare(stage: "report")
            let reports = RunHistory.latest(work: WorkDir(root: config.workDir), last: last)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(reports), as: UTF8.self))
                return .ok
            }
            print("work dir: \(config.workDir)   last \(last) runs per stage")
            print(Table.render(header: RunReport.tableHeader, rows: reports.map(\.tableRow)))
            return .ok
        }
    }
}
