import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems setup`: creates the tables, indexes, view and ledger the pipeline needs (idempotent).
struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Create what is missing in the environment's database and check what exists.",
        discussion: """
            With --create-role NAME, also creates (or updates) the least-privilege importer role and prints its \
            GRANTs; its password comes from the variable named by --password-env (environment or .env.<env>). \
            In prod, --create-role needs --confirm-prod. Exit status: 0 OK, 64 incompatible existing object or \
            unknown time zone, 69 database unavailable, 77 prod without --confirm-prod.
            """)

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("ledger-schema"), help: ArgumentHelp("The ledger schema.", visibility: .hidden))
    var ledgerSchema = Schema.defaultLedgerSchema

    @Option(name: .customLong("create-role"), help: "Create or update the importer role NAME with only the privileges the stages need.")
    var createRole: String?

    @Option(name: .customLong("password-env"), help: "The variable holding the importer role's password (never a command-line argument).")
    var passwordEnv: String?

    @Flag(name: .customLong("confirm-prod"), help: "Confirm a change to the prod database (required with --env prod).")
    var confirmProd = false

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "setup")
            let target = try common.database(config: config, logger: logger)
            let db = try target.connect(logger: logger)
            let report = try DatabaseSetup.run(
                on: db, timeZone: config.timeZone, ledgerSchema: ledgerSchema, logger: logger)
            for line in report.lines { print(line) }
            if let createRole {
                try requireProdConfirmation(env: common.env, confirmed: confirmProd, action: "setup --create-role")
                var password: String?
                if let passwordEnv {
                    guard let value = try EnvironmentFile.merged(env: common.env)[passwordEnv], !value.isEmpty else {
                        throw PipelineError.usage("--password-env \(passwordEnv): the variable is not set")
                    }
                    password = value
                }
                let statements = try ImporterRole.create(
                    createRole, password: password, on: db, timeZone: config.timeZone, ledgerSchema: ledgerSchema,
                    logger: logger)
                for sql in statements { print(sql + ";") }
            }
            return .ok
        }
    }
}
