import ArgumentParser
import BEMSCommandSupport
import BEMSCore

/// `bems-validate`: checks the input CSV files and writes the validation report and dead-letter file.
@main
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-validate",
        abstract: "Validate CU-BEMS CSV files: report per file, dead-letter file for rejected records.",
        discussion: """
            Exit status: 0 when every file's rejected share is within rejectThreshold, 65 when a file is over it or \
            has an unusable header, 64 for a bad configuration, 66 for a missing input, 73 when another run holds \
            the work directory, 74 for an I/O error.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Run even when inputs and settings are unchanged since the last run.")
    var force = false

    @Option(
        name: .customLong("max-diagnostics"), help: "Diagnostics printed on stderr (all go to the dead-letter file).")
    var maxDiagnostics = 20

    @Argument(help: "CSV files or folders; they replace the configured sources.")
    var inputs: [String] = []

    func run() async throws {
        try await common.runMonitored(.validate) { run in
            let (config, logger) = (run.config, run.logger)
            var options = ValidateStage.Options(config: config, env: common.env)
            options.progress = run.progress
            options.inputs = inputs
            options.force = force
            options.maxDiagnostics = maxDiagnostics
            let result = try await ValidateStage.run(options, logger: logger)
            run.record(result.manifest, upToDate: result.upToDate)
            printError(ValidateSummary.render(result))
            return result.exitStatus
        }
    }
}
