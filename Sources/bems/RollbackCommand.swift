import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems rollback STAGE [RUN]`: takes back a stage run.
///
/// - File stages (validate, normalize, dedupe): the stage's previous run becomes current again; the rolled-back
///   run's files stay for inspection.
/// - load: reverts a committed load run in the database (see `LoadRollback`).
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Take back a stage run: file stages return to their previous run; load reverts a committed run.",
        discussion: """
            bems rollback normalize        the previous normalize run becomes current
            bems rollback load [RUN]       delete what load run RUN inserted and restore what it updated \
            (default: the latest committed load run)
            Exit status: 0 OK, 65 refused (a later load touched the same readings), 66 nothing to roll back, \
            69 database unavailable, 73 work directory or load locked, 77 prod without --confirm-prod.
            """)

    @OptionGroup var common: CommonOptions

    @Argument(help: "The stage: validate, normalize, dedupe or load.")
    var stage: String

    @Argument(help: "load only: the ledger run id or the load run id of the work directory.")
    var run: String?

    @Flag(name: .customLong("confirm-prod"), help: "Confirm a rollback in prod (required with --env prod).")
    var confirmProd = false

    func validate() throws {
        guard ["validate", "normalize", "dedupe", "load"].contains(stage) else {
            throw ValidationError("rollback takes validate, normalize, dedupe or load (got \(stage))")
        }
        if run != nil, stage != "load" {
            throw ValidationError("a run id is accepted for load only; file stages return to their previous run")
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "rollback")
            try requireProdConfirmation(env: common.env, confirmed: confirmProd, action: "rollback \(stage)")
            if stage == "load" {
                var options = LoadRollback.Options(
                    config: config, env: common.env,
                    database: try common.database(config: config, logger: logger))
                options.run = run
                let result = try LoadRollback.run(options, logger: logger)
                print(
                    "load run \(result.ledgerRunID) rolled back: \(result.chunks) chunks"
                        + (result.pieces != result.chunks ? " (\(result.pieces) pieces)" : "")
                        + ", \(result.deleted) readings "
                        + "deleted, \(result.restored) restored")
                return .ok
            }
            let work = WorkDir(root: config.workDir)
            let lock = try WorkDirLock(directory: work.root)
            defer { withExtendedLifetime(lock) {} }
            let (rolled, current) = try work.rollback(Stage(rawValue: stage)!)
            logger.notice("rolled back", metadata: ["run": "\(rolled)", "current": "\(current ?? "none")"])
            print("\(stage): rolled back run \(rolled); current run is now \(current ?? "none")")
            return .ok
        }
    }
}
