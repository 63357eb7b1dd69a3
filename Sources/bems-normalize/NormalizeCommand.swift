import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems-normalize`: turns validated CSV files into zstd-compressed columnar chunk files.
@main
struct NormalizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-normalize",
        abstract: "Turn validated CU-BEMS CSV files into long readings in checksummed chunk files.",
        discussion: """
            Reads the same inputs as bems-validate and requires a passing validate run for each of them. \
            Exit status: 0 OK (or up to date), 65 input failed validation, 66 input not validated or changed since, \
            64 bad configuration, 73 work directory locked, 74 I/O error.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Run even when inputs and settings are unchanged since the last run.")
    var force = false

    @Argument(help: "CSV files or folders; they replace the configured sources.")
    var inputs: [String] = []

    func run() async throws {
        try await common.runMonitored(.normalize) { run in
            let (config, logger) = (run.config, run.logger)
            var options = NormalizeStage.Options(config: config, env: common.env)
            options.progress = run.progress
            options.inputs = inputs
            options.force = force
            options.sample = common.sample
            let result = try await NormalizeStage.run(options, logger: logger)
            run.record(result.manifest, upToDate: result.upToDate)
            let t = result.manifest.totals
            if result.upToDate {
                printError("normalize: up to date (run \(result.manifest.runID)); use --force to rerun")
            }
            let readings = t["readings", default: 0]
            let bytes = t["bytes", default: 0]
            printError(
                "normalize: \(t["files", default: 0]) files -> \(t["chunks", default: 0]) chunks, \(readings) readings, "
                    + "\(bytes) bytes (\(readings > 0 ? String(format: "%.2f", Double(bytes) / Double(readings)) : "-") bytes/reading), "
                    + "\(String(format: "%.2f", result.manifest.seconds)) s, run \(result.manifest.runID)")
            if let s = result.manifest.sample, s.fraction < 1 {
                printError(
                    "normalize: \(common.env) sample \(s.fraction): kept \(s.daysKept) of \(s.daysSeen) days, "
                        + "\(s.readingsSkipped) readings of the other days left out (--sample 1 keeps everything)")
            }
            return .ok
        }
    }
}
