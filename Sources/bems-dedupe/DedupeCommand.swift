import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems-dedupe`: merges the normalize chunks per floor and day and classifies every reading against the database.
@main
struct DedupeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-dedupe",
        abstract: "Deduplicate normalized readings and classify them as insert, update or skip against the database.",
        discussion: """
            Reads the current normalize run, drops duplicate readings (later sources win conflicts, reported in \
            conflicts.jsonl), and reads sensor_readings (read-only, one snapshot) to keep only inserts and updates. \
            Exit status: 0 on success, 64 for a bad configuration or an unset database variable, 66 when there is no \
            normalize run or a chunk is missing, 69 when the database is unavailable, 73 when another run holds the \
            work directory, 74 for a corrupt chunk or an I/O error.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Run even when the normalize run and settings are unchanged since the last run.")
    var force = false

    @Option(help: "Groups processed in parallel, each with its own connection (0 = one per core).")
    var parallelism = 0

    func validate() throws {
        guard parallelism >= 0 else { throw ValidationError("--parallelism must be 0 or more") }
    }

    func run() async throws {
        try await common.runMonitored(.dedupe) { run in
            let (config, logger) = (run.config, run.logger)
            var options = DedupeStage.Options(config: config, env: common.env)
            options.progress = run.progress
            options.database = try common.database(config: config, logger: logger)
            options.force = force
            options.parallelism = parallelism
            let result = try await DedupeStage.run(options, logger: logger)
            run.record(result.manifest, upToDate: result.upToDate)
            let r = result.report
            if result.upToDate {
                printError(
                    "dedupe is up to date (run \(r.runID), normalize run \(r.normalizeRunID)); use --force to rerun")
            } else {
                printError(
                    Table.render(
                        header: [
                            "readings in", "duplicates", "conflicts", "inserts", "updates", "skips", "lookups",
                            "chunks", "seconds",
                        ],
                        rows: [
                            [
                                "\(r.readingsIn)", "\(r.duplicatesDropped)", "\(r.conflicts)", "\(r.inserts)",
                                "\(r.updates)", "\(r.skips)", "\(r.lookupQueries)", "\(r.chunksWritten)",
                                String(format: "%.2f", r.seconds),
                            ]
                        ]))
                printError("run \(r.runID): snapshot of the database taken at \(r.snapshotTakenAt)")
                if r.conflicts > 0 { printError("conflicts: \(result.runDirectory)/\(r.conflictsFile)") }
            }
            return .ok
        }
    }
}
