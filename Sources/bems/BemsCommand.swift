import ArgumentParser
import BEMSCommandSupport
import BEMSCore

@main
struct BemsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems",
        abstract: "Operator commands for the CU-BEMS import pipeline.",
        subcommands: [SampleCommand.self]
    )
}
