import ArgumentParser
import BEMSCommandSupport
import BEMSCore

@main
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bems-validate", abstract: "TODO")
    func run() async throws {}
}
