import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems verify [--run ID] [--json]`: compares a load run with the database.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a load run against the database: ledger counts per chunk, count and value sum per sensor-day.",
        discussion:
            "Writes verify.json into the load run folder. Exit status: 0 OK, 65 mismatch, 66 no load run, 69 database unavailable."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "The load run id (work directory); default the current load run.")
    var run: String?

    @Flag(help: "Print the report as JSON on stdout.")
    var json = false

    @Option(name: .customLong("ledger-schema"), help: ArgumentHelp("The ledger schema.", visibility: .hidden))
    var ledgerSchema = Schema.defaultLedgerSchema

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "verify")
            var options = VerifyStage.Options(
                config: config, env: common.env, database: try common.database(config: config, logger: logger))
            options.runID = run
            options.ledgerSchema = ledgerSchema
            let report = try VerifyStage.run(options, logger: logger)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(report.summary())
            }
            return report.passed ? .ok : .dataError
        }
    }
}
