import ArgumentParser
import BEMSCommandSupport
import BEMSCore

@main
struct NormalizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bems-normalize", abstract: "TODO")
    func run() async throws {}
}
