import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems-refresh`: recomputes `daily_aggregates` and refreshes planner statistics, when a load changed data.
@main
struct RefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-refresh",
        abstract: "Refresh daily_aggregates (the sensor-days loads changed) and ANALYZE, when loads changed data.",
        discussion: """
            Recomputes the sensor-days loads and rollbacks recorded; the whole table the first time, when most \
            sensor-days changed, or with --force (which also covers changes made outside bems). Skipped when no load \
            or rollback was recorded in the ledger since the last refresh. Exit status: 0 on success or skip, 64 for a bad configuration or an unset database variable, 66 \
            when the database is not set up, 69 when the database is unavailable or a statement fails, 73 when \
            another run holds the work directory.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Recompute the whole table, even when no load changed data since the last refresh.")
    var force = false

    @Option(name: .customLong("ledger-schema"), help: "The schema of the pipeline's ledger tables.")
    var ledgerSchema = Schema.defaultLedgerSchema

    func run() async throws {
        try await common.runMonitored(.refresh) { run in
            let (config, logger) = (run.config, run.logger)
            var options = RefreshStage.Options(config: config, env: common.env)
            options.progress = run.progress
            options.database = try common.database(config: config, logger: logger)
            options.force = force
            options.ledgerSchema = ledgerSchema
            let result = try await RefreshStage.run(options, logger: logger)
            run.record(result.manifest, upToDate: result.upToDate)
            let r = result.report
            if result.upToDate {
                printError(
                    "refresh is up to date: \(r.skippedReason ?? "nothing changed"); use --force to refresh anyway")
            } else {
                printError(
                    Table.render(
                        header: ["mode", "sensor-days", "refresh s", "analyze s", "aggregate rows"],
                        rows: [
                            [
                                r.mode, "\(r.sensorDays)", String(format: "%.3f", r.refreshSeconds),
                                String(format: "%.3f", r.analyzeSeconds), "\(r.aggregateRows)",
                            ]
                        ]))
            }
            return .ok
        }
    }
}
