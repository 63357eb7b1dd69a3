import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems`: operator commands around the stage executables.
@main
struct BemsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems",
        abstract: "Operator commands for the CU-BEMS import pipeline.",
        subcommands: [
            SampleCommand.self, StatusCommand.self, InspectCommand.self, SetupCommand.self, VerifyCommand.self,
            RollbackCommand.self, ReportCommand.self, DigestCommand.self, ServeCommand.self,
        ]
    )
}
