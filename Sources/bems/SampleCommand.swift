import ArgumentParser
import BEMSCore
import Foundation

/// `bems sample`: writes deterministic CU-BEMS-shaped floor files for development, tests and benchmarks.
struct SampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Write deterministic sample CU-BEMS floor files (<year>Floor<n>.csv).",
        discussion: """
            Same flags, same bytes. With --full the real dataset's shape is written (2018-07-01 to 2019-12-31, \
            2019Floor6 ending at 2019-10-22 13:27:00 plus the junk line "2"); --start and --days are then ignored.
            """
    )

    @Option(help: "Number of days to generate, starting at --start.")
    var days: Int = 7

    @Option(help: "First day, YYYY-MM-DD (Bangkok local).")
    var start: String = "2019-03-04"

    @Option(help: "Comma-separated floors, 1 through 7 (also applies with --full).")
    var floors: String = "1,2,3,4,5,6,7"

    @Option(help: "Output directory (created if missing).")
    var out: String = "data/sample"

    @Option(help: "PRNG seed; the same seed gives byte-identical files.")
    var seed: UInt64 = 42

    @Flag(help: "End lines with CRLF instead of LF.")
    var crlf = false

    @Flag(help: "Start each file with a UTF-8 byte order mark.")
    var bom = false

    @Flag(name: .customLong("truncate-floor6"), help: "End 2019Floor6.csv with the junk line \"2\", as the real file.")
    var truncateFloor6 = false

    @Flag(help: "Write the full real dataset shape (about 5.4 million rows, 700 MB).")
    var full = false

    func validate() throws {
        guard CivilDate(parsing: start) != nil else { throw ValidationError("--start must be a date YYYY-MM-DD") }
        guard parsedFloors() != nil else { throw ValidationError("--floors must list floors 1 through 7, e.g. 1,2,6") }
        guard days >= 1 else { throw ValidationError("--days must be at least 1") }
    }

    private func parsedFloors() -> [Int]? {
        let parts = floors.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.allSatisfy({ $0.map { (1...7).contains($0) } ?? false }) else { return nil }
        let list = parts.compactMap { $0 }
        return Set(list).count == list.count ? list : nil
    }

    func run() async throws {
        let floorList = parsedFloors() ?? Array(1...7)
        let ending: SampleConfiguration.LineEnding = crlf ? .crlf : .lf
        let configuration: SampleConfiguration
        if full {
            configuration = .full(seed: seed, floors: floorList, lineEnding: ending, byteOrderMark: bom)
        } else {
            configuration = SampleConfiguration(
                start: CivilDate(parsing: start)!,
                days: days,
                floors: floorList,
                seed: seed,
                lineEnding: ending,
                byteOrderMark: bom,
                truncateFloor6: truncateFloor6
            )
        }
        let clock = ContinuousClock()
        let began = clock.now
        let summary: SampleSummary
        do {
            summary = try SampleGenerator(configuration: configuration).write(toDirectory: out)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode(74)
        }
        let elapsed = clock.now - began
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        for file in summary.files {
            print("\(out)/\(file.name)\t\(file.rows) rows\t\(file.bytes) bytes")
        }
        let megabytes = Double(summary.bytes) / 1_000_000
        let rate = seconds > 0 ? megabytes / seconds : 0
        print(
            "\(summary.files.count) files, \(summary.rows) rows, \(summary.bytes) bytes in "
                + "\(String(format: "%.2f", seconds)) s (\(String(format: "%.1f", rate)) MB/s)"
        )
    }
}
