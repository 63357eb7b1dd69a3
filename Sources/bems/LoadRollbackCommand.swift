import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems rollback-load [RUN]` (wired as `bems rollback load RUN`): reverts a committed load run in the database.
struct LoadRollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback-load",
        abstract: "Revert a load run: delete what it inserted, restore what it updated, in one transaction.",
        discussion: """
            Refused when a later committed load run updated the same readings (roll that back first). \
            Exit status: 0 OK, 65 refused, 66 no such run, 69 database unavailable, 73 a load is running.
            """)

    @OptionGroup var common: CommonOptions

    @Argument(
        help: "The ledger run id or the load run id of the work directory; default the latest committed load run.")
    var run: String?

    @Option(name: .customLong("ledger-schema"), help: ArgumentHelp("The ledger schema.", visibility: .hidden))
    var ledgerSchema = Schema.defaultLedgerSchema

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "rollback-load")
            var options = LoadRollback.Options(
                config: config, env: common.env, database: try DatabaseTarget.resolve(config: config, env: common.env))
            options.run = run
            options.ledgerSchema = ledgerSchema
            let result = try LoadRollback.run(options, logger: logger)
            print(
                "load run \(result.ledgerRunID) rolled back: \(result.chunks) chunks, \(result.deleted) readings "
                    + "deleted, \(result.restored) restored")
            return .ok
        }
    }
}
