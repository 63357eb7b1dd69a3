import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems setup`: creates the tables, indexes, view and ledger the pipeline needs (idempotent).
struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Create what is missing in the environment's database and check what exists.",
        discussion: "Exit status: 0 OK, 64 incompatible existing object or unknown time zone, 69 database unavailable.")

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("ledger-schema"), help: ArgumentHelp("The ledger schema.", visibility: .hidden))
    var ledgerSchema = Schema.defaultLedgerSchema

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "setup")
            let target = try common.database(config: config, logger: logger)
            let db = try target.connect(logger: logger)
            let report = try DatabaseSetup.run(
                on: db, timeZone: config.timeZone, ledgerSchema: ledgerSchema, logger: logger)
            for line in report.lines { print(line) }
            return .ok
        }
    }
}
