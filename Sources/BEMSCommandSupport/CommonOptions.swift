import ArgumentParser
import BEMSCore
import Foundation
import Logging

/// Options every stage command takes.
package struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "The pipeline configuration file.")
    package var config: String = "pipeline.json"

    @Option(name: .long, help: "The environment: dev, staging or prod.")
    package var env: String = "dev"

    @Option(name: .customLong("work-dir"), help: "The work directory (overrides workDir in the configuration).")
    package var workDir: String?

    @Option(name: .customLong("log-level"), help: "Log level: trace, debug, info, notice, warning, error, critical.")
    package var logLevel: Logger.Level = .notice

    @Option(
        help: ArgumentHelp(
            "Share of days normalize keeps, 0 to 1 (overrides the environment's sample: dev and staging 0.1, prod 1).",
            valueName: "fraction"))
    package var sample: Double?

    @Flag(name: .customLong("allow-superuser"), help: "prod only: accept a superuser database connection.")
    package var allowSuperuser = false

    @Flag(
        name: [.customShort("q"), .long],
        help: "No progress: neither the line redrawn on a terminal nor the progress log lines.")
    package var quiet = false

    package init() {}

    package func validate() throws {
        if let sample, !(sample >= 0 && sample <= 1) {
            throw ValidationError("--sample \(sample): expected a fraction from 0 to 1")
        }
    }

    /// Sets up logging to stderr and reads the configuration, applying `--work-dir`.
    ///
    /// - Throws: ``PipelineError`` 64 for a bad configuration or environment name.
    package func prepare(stage: String) throws -> (PipelineConfig, Logger) {
        LoggingSystem.bootstrapOnce(level: logLevel)
        var logger = Logger(label: "bems.\(stage)")
        logger.logLevel = logLevel
        logger[metadataKey: "stage"] = "\(stage)"
        logger[metadataKey: "env"] = "\(env)"
        var configuration: PipelineConfig
        if FileManager.default.fileExists(atPath: config) || config != "pipeline.json" {
            configuration = try PipelineConfig.load(path: config)
        } else {
            configuration = PipelineConfig()
        }
        guard configuration.environments[env] != nil else {
            throw PipelineError.usage(
                "--env \(env): unknown environment (expected one of: \(configuration.environments.keys.sorted().joined(separator: ", ")))"
            )
        }
        if let workDir { configuration.workDir = workDir }
        return (configuration, logger)
    }
}

extension CommonOptions {
    /// The environment's database (``DatabaseTarget/resolve(config:env:environment:logger:)``): the URL from the
    /// environment or `.env.<env>`, the embedded PostgreSQL for dev without one; `--allow-superuser` applied.
    package func database(config: PipelineConfig, logger: Logger) throws -> DatabaseTarget {
        var target = try DatabaseTarget.resolve(config: config, env: env, logger: logger)
        target.allowSuperuser = allowSuperuser
        return target
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension LoggingSystem {
    nonisolated(unsafe) private static var bootstrapped = false

    /// Bootstraps swift-log once per process, to stderr.
    package static func bootstrapOnce(level: Logger.Level) {
        guard !bootstrapped else { return }
        bootstrapped = true
        bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Runs a command body, turning pipeline errors into their documented exit codes with a one-line message.
package func runReportingErrors(_ body: () async throws -> ExitStatus) async throws {
    let status: ExitStatus
    do {
        status = try await body()
    } catch let error as any ExitCodeError {
        FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
        throw ExitCode(error.exitStatus.rawValue)
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(ExitStatus.unexpected.rawValue)
    }
    if status != .ok { throw ExitCode(status.rawValue) }
}

/// Destructive commands against prod (rollback, role changes) need `--env prod` spelled out, which selecting prod
/// already requires, and `--confirm-prod`.
///
/// - Throws: ``PipelineError`` 77 without the confirmation.
package func requireProdConfirmation(env: String, confirmed: Bool, action: String) throws {
    guard env == "prod", !confirmed else { return }
    throw PipelineError(.noPermission, "\(action) changes the prod database: add --confirm-prod to go ahead")
}

/// Writes a line to stderr (human summaries; stdout stays for data).
package func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
