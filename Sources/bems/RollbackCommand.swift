import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems rollback STAGE`: makes the stage's previous run current again.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Return a stage to its previous run (the rolled-back run's files stay for inspection).",
        discussion: "Exit status: 0 OK, 66 the stage has no run to roll back, 73 work directory locked.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "The stage: validate or normalize.")
    var stage: String

    func validate() throws {
        guard ["validate", "normalize"].contains(stage) else {
            throw ValidationError("rollback takes validate or normalize (got \(stage))")
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "rollback")
            let work = WorkDir(root: config.workDir)
            let lock = try WorkDirLock(directory: work.root)
            defer { withExtendedLifetime(lock) {} }
            let (rolled, current) = try work.rollback(Stage(rawValue: stage)!)
            logger.notice("rolled back", metadata: ["stage": "\(stage)", "run": "\(rolled)", "current": "\(current ?? "none")"])
            print("\(stage): rolled back run \(rolled); current run is now \(current ?? "none")")
            return .ok
        }
    }
}
