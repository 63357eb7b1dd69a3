import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `bems serve …`: runs `bems-serve` (next to `bems`) with the same arguments, so `bems` itself does not link the HTTP
/// server.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the admin HTTP API (runs bems-serve with these arguments; see bems-serve --help).")

    @Argument(parsing: .captureForPassthrough, help: "The options of bems-serve.")
    var arguments: [String] = []

    func run() throws {
        let path = executableDirectory() + "/bems-serve"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            printError("error: \(path): missing (build it with swift build)")
            throw ExitCode(ExitStatus.noInput.rawValue)
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        printError("error: \(path): cannot run it (\(String(cString: strerror(errno))))")
        throw ExitCode(ExitStatus.unexpected.rawValue)
    }
}
