import ArgumentParser
import BEMSCommandSupport
import BEMSCore
import BEMSServer
import Foundation

/// `bems-serve` (also `bems serve`): the admin HTTP API over the same core library and stage executables.
@main
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bems-serve",
        abstract: "Serve the admin HTTP API: start imports, follow their status, validate files, metrics, health.",
        discussion: """
            Admin endpoints need Authorization: Bearer <token>, the token being the value of the variable \
            environments.<env>.serviceTokenEnv names (default BEMS_<ENV>_SERVICE_TOKEN; environment or .env.<env>). \
            Binds serve.host:serve.port of pipeline.json (default 127.0.0.1:8787) and prints "listening on \
            http://HOST:PORT" on stdout. Imports run the stage executables next to this one. SIGTERM or SIGINT \
            stops the server; a running stage is sent SIGTERM and its import ends "interrupted". --sample is the \
            sample of imports whose request gives none. Exit status: 0 \
            after SIGTERM/SIGINT, 64 for a bad configuration or a missing or short service token for --env, 66 when a \
            stage executable is missing, 73 when the port is in use, 77 when the port needs privileges.
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "The address to bind (overrides serve.host; default 127.0.0.1).")
    var host: String?

    @Option(help: "The port (overrides serve.port; default 8787; 0 takes a free port).")
    var port: Int?

    func validate() throws {
        if let port, !(0...65_535).contains(port) { throw ValidationError("--port \(port): expected 0 to 65535") }
    }

    func run() async throws {
        try await runReportingErrors {
            let (config, logger) = try common.prepare(stage: "serve")
            var variables: [String: [String: String]] = [:]
            for env in config.environments.keys { variables[env] = try EnvironmentFile.merged(env: env) }
            if let problem = ServiceTokens.problem(config: config, env: common.env, variables: variables[common.env] ?? [:]) {
                throw PipelineError.usage(problem)
            }
            let binDirectory = executableDirectory()
            for stage in Stage.allCases
            where !FileManager.default.isExecutableFile(atPath: binDirectory + "/bems-" + stage.rawValue) {
                throw PipelineError.noInput("\(binDirectory)/bems-\(stage.rawValue): missing (the stages run from here)")
            }
            let configPath =
                FileManager.default.fileExists(atPath: common.config)
                ? URL(fileURLWithPath: common.config).standardizedFileURL.path : nil
            var settings = AdminServer.Settings(
                config: config, env: common.env, variables: variables, configPath: configPath,
                binDirectory: binDirectory)
            if let host { settings.host = host }
            if let port { settings.port = port }
            settings.allowSuperuser = common.allowSuperuser
            settings.defaultSample = common.sample
            let server = AdminServer(settings: settings, logger: logger)
            let shownHost = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
            try await server.runUntilStopped { port in
                FileHandle.standardOutput.write(Data("listening on http://\(shownHost):\(port)\n".utf8))
            }
            return .ok
        }
    }
}
