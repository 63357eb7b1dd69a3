import ArgumentParser
import BEMSCore
import Logging

/// Options every stage command takes.
public struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "The pipeline configuration file.")
    public var config: String = "pipeline.json"

    @Option(name: .long, help: "The environment: dev, staging or prod.")
    public var env: String = "dev"

    @Option(name: .customLong("work-dir"), help: "The work directory (overrides the configuration).")
    public var workDir: String?

    @Option(name: .customLong("log-level"), help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .notice

    public init() {}
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
