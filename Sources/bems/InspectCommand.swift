import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems inspect CHUNK`: prints a chunk's header on stderr and its rows as CSV on stdout.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a chunk's header (stderr) and dump its rows as CSV (stdout).",
        discussion: "Exit status: 0 OK, 66 no such file, 74 corrupt or truncated chunk (the message names it).")

    @Argument(help: "The chunk file (.bemc).")
    var chunk: String

    @Flag(name: .customLong("header-only"), help: "Print only the header.")
    var headerOnly = false

    @Option(name: .customLong("time-zone"), help: "Zone for printed timestamps (RFC 3339 with offset).")
    var timeZone = "Asia/Bangkok"

    func run() async throws {
        try await runReportingErrors {
            let converter = try LocalTimeConverter(identifier: timeZone)
            let bytes = try ChunkFile.read(chunk)
            do {
                if headerOnly {
                    let header = try ChunkReader.readHeader(bytes)
                    print(ChunkInspector.describe(header, path: chunk, converter: converter))
                    return .ok
                }
                let (header, data) = try ChunkReader.decode(bytes)
                printError(ChunkInspector.describe(header, path: chunk, converter: converter))
                var out = ""
                out.reserveCapacity(1 << 20)
                out += ChunkInspector.csvHeader(header) + "\n"
                ChunkInspector.forEachCSVLine(data, converter: converter) { line in
                    out += line
                    out += "\n"
                    if out.utf8.count >= 1 << 20 {
                        FileHandle.standardOutput.write(Data(out.utf8))
                        out.removeAll(keepingCapacity: true)
                    }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
                return .ok
            } catch {
                throw PipelineError.io("\(chunk): \(error)")
            }
        }
    }
}
