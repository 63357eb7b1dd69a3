import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import Foundation

/// `bems-load`: loads the current dedupe run into PostgreSQL, exactly once per chunk, then verifies.
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-load",
        abstract: "Load the current dedupe run's chunks into sensor_readings (one transaction per chunk), then verify.",
        discussion: """
            The connection string comes from the environment variable pipeline.json names for --env. Every chunk's \
            SHA-256 is checked before anything is loaded. Chunks already committed in the ledger are skipped, so a \
            rerun after a crash converges. A chunk whose COPY or update hits the statement timeout is loaded in \
            halves, down to load.minPieceRows. Exit status: 0 OK (or up to date), 65 the database changed since \
            dedupe or verify found a mismatch, 66 no dedupe run, 69 database unavailable (or a piece at \
            load.minPieceRows still timed out), 73 locked, 74 corrupt chunk, 75 the storage pre-flight estimates \
            the database over its environment's storageLimitMB (nothing loaded; --force loads anyway).
            """)

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("ledger-schema"), help: ArgumentHelp("The ledger schema.", visibility: .hidden))
    var ledgerSchema = Schema.defaultLedgerSchema

    @Option(help: "Chunks loaded at once, each on its own connection (default: one per core, at most 4).")
    var workers: Int?

    @Flag(name: .customLong("skip-verify"), help: "Do not run verify after loading.")
    var skipVerify = false

    @Flag(
        name: .customLong("keep-indexes"),
        help: """
            Keep the indexes and keys during a first load (by default the BRIN and floor indexes are dropped and the \
            unique and primary keys suspended, all rebuilt after the last chunk).
            """)
    var keepIndexes = false

    @Flag(help: "Load even when the storage pre-flight estimates the database over its storage limit.")
    var force = false

    func run() async throws {
        try await common.runMonitored(.load) { run in
            let (config, logger) = (run.config, run.logger)
            let target = try common.database(config: config, logger: logger)
            var options = LoadStage.Options(config: config, env: common.env, database: target)
            options.progress = run.progress
            options.ledgerSchema = ledgerSchema
            options.skipVerify = skipVerify
            options.dropIndexesOnFirstLoad = !keepIndexes
            if let w = workers ?? config.environments[common.env]?.workers { options.workers = max(1, min(w, 64)) }
            // Storage pre-flight before anything is loaded (exit 75 over the limit unless --force).
            run.storage = try StoragePreflight.check(
                config: config, env: common.env, database: target, ledgerSchema: ledgerSchema,
                workers: options.workers, force: force, logger: logger)
            if let s = run.storage, s.verdict != .ok { printError(s.preflightMessage(env: common.env)) }
            let result = try await LoadStage.run(options, logger: logger)
            run.record(result.manifest, upToDate: result.upToDate)
            if !result.upToDate, var s = run.storage {
                StoragePreflight.measureAfterLoad(&s, database: target, logger: logger)
                run.storage = s
                if let line = StoragePreflight.afterLoadMessage(s, env: common.env) { printError(line) }
            }
            if result.upToDate {
                print(
                    "load is up to date (run \(result.manifest?.runID ?? "?"), ledger run \(result.ledgerRunID.map(String.init) ?? "?"))"
                )
                if let verify = result.verify { print(verify.summary()) }
            } else {
                print(
                    "load run \(result.manifest?.runID ?? "?") (ledger run \(result.ledgerRunID.map(String.init) ?? "?")): "
                        + "\(result.chunksLoaded) chunks loaded, \(result.chunksSkipped) skipped, "
                        + "\(result.inserted) inserted, \(result.updated) updated, "
                        + "slowest chunk \(String(format: "%.3f", result.maxChunkSeconds)) s, \(result.workers) workers"
                        + (result.throttledSeconds > 0
                            ? ", throttled \(String(format: "%.1f", result.throttledSeconds)) s by the rate limits" : "")
                        + (result.splits > 0
                            ? ", \(result.splits) splits after statement timeouts (\(result.pieces) pieces)" : ""))
                if let verify = result.verify {
                    print(verify.summary())
                }
            }
            return result.exitStatus
        }
    }
}
