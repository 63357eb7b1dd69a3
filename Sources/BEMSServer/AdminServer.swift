import BEMSCore
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The admin HTTP API (`bems serve`): start imports, follow them, validate files, metrics and health.
///
/// | Route | Auth | Answer |
/// |---|---|---|
/// | `POST /admin/import` | token | 202 and the import's record; 409 while one runs; 503 while the database is down |
/// | `GET /admin/import/status` | token | the running and recent imports and the latest stage runs |
/// | `GET /admin/import/status/{id}` | token | one import (or one stage run by its run id) |
/// | `POST /admin/validate` | token | the validation report of the uploaded CSV body, or of the configured inputs |
/// | `GET /metrics` | none | Prometheus text: the server's counters and the stages' textfiles |
/// | `GET /healthz` | none | 200 `{"status": "ok", "database": "up"/"down"}` |
///
/// Each client address may make `serve.requestsPerSecond` requests to `/admin/*` over time, `serve.requestBurst` at
/// once (``ClientRateLimit``); more get 429 with `Retry-After`, before the token is looked at.
///
/// Every answer is JSON (but `/metrics`). Errors are `{"error": "…"}` (and `"field"` for a bad body) and never hold a
/// connection string, libpq's message or a stack trace; the service token is never logged or echoed.
package final class AdminServer: Sendable {
    package struct Settings: Sendable {
        /// The configuration, with the work dir applied.
        package var config: PipelineConfig
        /// The server's environment: the default of every request.
        package var env: String
        /// Each environment's variables (process environment over `.env.<env>`): tokens and database URLs.
        package var variables: [String: [String: String]]
        /// `--config` for the stage processes.
        package var configPath: String?
        /// The folder of the stage executables.
        package var binDirectory: String
        package var allowSuperuser = false
        package var host: String
        package var port: Int
        /// The largest CSV upload (`serve.maxBodyBytes`).
        package var maxBodyBytes: Int
        /// The largest JSON body.
        package var maxJSONBytes = 65_536
        /// The sample of imports whose request gives none (`bems-serve --sample`); `nil`: the environment's.
        package var defaultSample: Double?

        package init(
            config: PipelineConfig, env: String, variables: [String: [String: String]], configPath: String?,
            binDirectory: String
        ) {
            self.config = config
            self.env = env
            self.variables = variables
            self.configPath = configPath
            self.binDirectory = binDirectory
            host = config.serve.host
            port = config.serve.port
            maxBodyBytes = config.serve.maxBodyBytes
        }
    }

    package let settings: Settings
    package let supervisor: ImportSupervisor
    package let tokens: ServiceTokens
    package let metrics = ServerMetrics()
    let logger: Logger
    private let validation = Gate()
    package let requestLimit: ClientRateLimit

    package init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        requestLimit = ClientRateLimit(
            rate: settings.config.serve.requestsPerSecond, burst: settings.config.serve.requestBurst)
        tokens = ServiceTokens(config: settings.config, variables: settings.variables)
        var supervision = ImportSupervisor.Settings(
            config: settings.config, configPath: settings.configPath, binDirectory: settings.binDirectory,
            childEnvironment: settings.variables.mapValues { variables in
                // The stages need no service token.
                variables.filter { name, _ in
                    !settings.config.environments.contains { env, e in e.serviceTokenVariable(env: env) == name }
                }
            })
        supervision.allowSuperuser = settings.allowSuperuser
        // Masked in progress lines and errors: database URLs and their passwords, and (never expected there) tokens.
        supervision.secrets = settings.config.environments.flatMap { env, e in
            (settings.variables[env]?[e.databaseURLEnv].map(SecretScrubber.secrets(ofConninfo:)) ?? [])
                + [settings.variables[env]?[e.serviceTokenVariable(env: env)]].compactMap { $0 }
        }
        supervisor = ImportSupervisor(settings: supervision, logger: logger)
    }

    /// The stages that need the database.
    package static let databaseStages: Set<Stage> = [.dedupe, .load, .refresh]

    // MARK: - Running

    /// The Hummingbird application; `onRunning` gets the bound port.
    package func application(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router(context: AdminRequestContext.self)
        router.get("/healthz") { request, _ in await self.answer("/healthz", request) { try await self.healthz() } }
        router.get("/metrics") { request, _ in await self.answer("/metrics", request) { self.metricsText() } }
        router.post("/admin/import") { request, context in
            await self.answer("/admin/import", request, limiting: context) { try await self.startImport(request) }
        }
        router.get("/admin/import/status") { request, context in
            await self.answer("/admin/import/status", request, limiting: context) { try self.status(request) }
        }
        router.get("/admin/import/status/:run") { request, context in
            let run = context.parameters.get("run") ?? ""
            return await self.answer("/admin/import/status/{run}", request, limiting: context) {
                try self.status(request, run: run)
            }
        }
        router.post("/admin/validate") { request, context in
            await self.answer("/admin/validate", request, limiting: context) { try await self.validate(request) }
        }
        return Application(
            router: router,
            server: .http1(
                configuration: .init(
                    idleTimeout: .milliseconds(Int64((settings.config.serve.idleTimeoutSeconds * 1000).rounded())))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "bems"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// A server started by ``start()``.
    package final class Running: Sendable {
        package let port: Int
        private let task: Task<Void, any Error>

        init(port: Int, task: Task<Void, any Error>) {
            self.port = port
            self.task = task
        }

        /// Stops accepting and closes the server (a running import goes on).
        package func stop() async {
            task.cancel()
            _ = try? await task.value
        }
    }

    /// Starts the server in this process and returns once it listens (the tests; `bems-serve` uses
    /// ``runUntilStopped(onListening:)``).
    ///
    /// - Throws: The bind error (the address is in use, or not an address of this machine).
    package func start() async throws -> Running {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = application { port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task {
            do {
                try await app.run()
            } catch {
                continuation.finish()
                throw error
            }
            continuation.finish()
        }
        for await port in ports { return Running(port: port, task: task) }
        try await task.value
        throw APIError(500, "the server stopped before it listened")
    }

    // MARK: - Answers

    /// One answer: status, body and extra headers.
    struct Reply {
        var status: Int
        var body: [UInt8]
        var contentType = "application/json; charset=utf-8"
        var headers: [(HeaderName, String)] = []

        static func json(_ status: Int, _ value: some Encodable, headers: [(HeaderName, String)] = []) -> Reply {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = (try? encoder.encode(value)) ?? Data(#"{"error": "the answer could not be encoded"}"#.utf8)
            return Reply(status: status, body: Array(data) + [0x0A], headers: headers)
        }

        static func error(_ error: APIError) -> Reply {
            struct Body: Encodable {
                var error: String
                var field: String?
            }
            var headers: [(HeaderName, String)] = []
            if error.status == 401 { headers.append((.wwwAuthenticate, #"Bearer realm="bems""#)) }
            if let seconds = error.retryAfter { headers.append((.retryAfter, "\(seconds)")) }
            // A body over the limit is not read to its end: close the connection instead.
            if error.status == 413 { headers.append((.connection, "close")) }
            return json(error.status, Body(error: error.message, field: error.field), headers: headers)
        }
    }

    /// Runs a handler, turns its ``APIError`` into a JSON error (any other error into a 500 that says only to look at
    /// the log), counts and logs the request (route template, status, milliseconds; never headers or the body).
    /// With a `limiting` context, its client's request limit is taken first: over it, 429 and the handler does not run.
    private func answer(
        _ route: String, _ request: Request, limiting context: AdminRequestContext? = nil,
        _ body: () async throws -> Reply
    ) async -> Response {
        let started = ContinuousClock.now
        let reply: Reply
        do {
            if let context, let wait = requestLimit.admit(context.client) {
                let serve = settings.config.serve
                let seconds = Int(max(1, wait.rounded(.up)))
                throw APIError(
                    429,
                    "too many requests from this client: at most \(PipelineConfig.written(serve.requestsPerSecond)) per"
                        + " second, \(serve.requestBurst) at once (serve.requestsPerSecond, serve.requestBurst); retry"
                        + " after \(seconds) s",
                    retryAfter: seconds)
            }
            reply = try await body()
        } catch let error as APIError {
            reply = .error(error)
        } catch {
            logger.error(
                "request failed", metadata: ["route": "\(route)", "error": "\(SecretScrubber.scrub("\(error)"))"])
            reply = .error(APIError(500, "internal error; see the server log"))
        }
        var headers = HTTPFields()
        headers[.contentType] = reply.contentType
        for (name, value) in reply.headers { headers[name] = value }
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        metrics.request(route: route, method: request.method.rawValue, status: reply.status)
        logger.info(
            "request",
            metadata: [
                "method": "\(request.method.rawValue)", "route": "\(route)", "status": "\(reply.status)",
                "ms": "\(String(format: "%.1f", ms))",
            ])
        return Response(
            status: HTTPResponse.Status(code: reply.status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    // MARK: - Auth and request parts

    /// The environment a request names in its query (`?env=`), else the server's.
    private func queryEnvironment(_ request: Request) throws(APIError) -> String {
        guard let env = request.uri.queryParameters.get("env") else { return settings.env }
        guard settings.config.environments[env] != nil else {
            throw APIError.badField(
                "env",
                "unknown environment (expected one of: \(settings.config.environments.keys.sorted().joined(separator: ", ")))"
            )
        }
        return env
    }

    /// The environment whose token the request holds.
    ///
    /// - Throws: 401 without a valid token.
    private func identify(_ request: Request) throws(APIError) -> String {
        switch tokens.identify(authorization: request.headers[.authorization]) {
        case .missing: throw APIError(401, "missing service token: send Authorization: Bearer <service-role token>")
        case .invalid: throw APIError(401, "invalid service token")
        case .environment(let env): return env
        }
    }

    /// Checks that the request's token is `env`'s.
    ///
    /// - Throws: 401 without a valid token, 403 with another environment's.
    private func authorize(_ request: Request, env: String) throws(APIError) {
        let holder = try identify(request)
        guard holder == env else { throw APIError(403, "the service token is not valid for the \(env) environment") }
    }

    /// The request body, at most `limit` bytes.
    ///
    /// - Throws: 413 over the limit (a `Content-Length` over it is refused before reading).
    private func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError(413, "the body is larger than \(limit) bytes")
        }
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= limit else {
                throw APIError(413, "the body is larger than \(limit) bytes")
            }
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    // MARK: - Handlers

    /// `GET /healthz`: always 200 while the server runs (liveness); `database` says whether the server's environment's
    /// database answers, `mode` whether imports are possible (`read-write`) or only status (`read-only`).
    private func healthz() async throws -> Reply {
        struct Health: Encodable {
            var status = "ok"
            var env: String
            var database: String
            var reason: String?
            var mode: String
            var importRunning: String?
            var version = BEMS.version
        }
        let (config, env) = (settings.config, settings.env)
        let variables = settings.variables[env] ?? [:]
        let probe = try await runBlocking {
            DatabaseProbe.check(config: config, env: env, variables: variables, startEmbedded: false)
        }
        return .json(
            200,
            Health(
                env: env, database: probe.database, reason: probe.reason, mode: probe.isUp ? "read-write" : "read-only",
                importRunning: supervisor.current(env: env)?.id))
    }

    /// `GET /metrics`: the server's counters and the stages' textfiles, merged into one valid exposition.
    private func metricsText() -> Reply {
        let running = settings.config.environments.keys.first { supervisor.current(env: $0) != nil }
        let own = metrics.exposition(environments: settings.config.environments.keys.sorted(), running: running)
        let directory = settings.config.monitoring.metricsDirectory(workDir: settings.config.workDir)
        let text = MetricsExposition.merge([own] + MetricsExposition.textfiles(in: directory))
        return Reply(status: 200, body: Array(text.utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    /// `POST /admin/import`.
    private func startImport(_ request: Request) async throws -> Reply {
        let holder = try identify(request)
        let body = try await collect(request, limit: settings.maxJSONBytes)
        let parsed = try ImportRequest.decode(body, environments: settings.config.environments.keys)
        let env = parsed.env ?? settings.env
        guard holder == env else { throw APIError(403, "the service token is not valid for the \(env) environment") }
        let stages = parsed.stages ?? Stage.allCases
        if let running = supervisor.running { throw conflict(running) }
        if stages.contains(where: Self.databaseStages.contains) {
            let (config, variables) = (settings.config, settings.variables[env] ?? [:])
            let probe = try await runBlocking {
                DatabaseProbe.check(config: config, env: env, variables: variables, startEmbedded: true)
            }
            guard probe.isUp else {
                throw APIError(
                    503,
                    "the \(env) database is unreachable (\(probe.reason ?? "down")): imports are refused until it is "
                        + "back; the status endpoints keep answering from the work dir")
            }
        }
        do {
            let record = try supervisor.start(env: env, stages: stages, sample: parsed.sample ?? settings.defaultSample)
            metrics.importStarted(env: env)
            return .json(202, record, headers: [(.location, "/admin/import/status/\(record.id)")])
        } catch .busy(let running) {
            throw conflict(running)
        } catch .locked(let message) {
            throw APIError(409, message)
        } catch .failed(let message) {
            logger.error("import could not start", metadata: ["error": "\(message)"])
            throw APIError(500, "the import could not start; see the server log")
        }
    }

    private func conflict(_ running: ImportRecord) -> APIError {
        APIError(
            409,
            "import \(running.id) is running for \(running.env) (stage \(running.currentStage?.rawValue ?? "-")); "
                + "one import runs at a time")
    }

    /// `GET /admin/import/status`: answers from memory and the work dir only, so it works while the database is down.
    private func status(_ request: Request) throws -> Reply {
        let env = try queryEnvironment(request)
        try authorize(request, env: env)
        let runs = RunHistory.latest(work: WorkDir(root: settings.config.workDir), last: 5).filter { $0.env == env }
        return .json(
            200,
            ImportStatus(
                env: env, current: supervisor.current(env: env), recent: supervisor.recent(env: env), runs: runs))
    }

    /// `GET /admin/import/status/{run}[?env=…]`: an import by id, else a stage run of the work dir by its run id, of
    /// the request's environment.
    private func status(_ request: Request, run: String) throws -> Reply {
        let env = try queryEnvironment(request)
        try authorize(request, env: env)
        guard ImportSupervisor.isImportID(run) else { throw APIError.badField("run", "not a run id") }
        if let record = supervisor.record(run), record.env == env { return .json(200, record) }
        let work = WorkDir(root: settings.config.workDir)
        if let report = Stage.allCases.lazy.compactMap({ stage in
            RunHistory.reports(stage, work: work).last { $0.runID == run && $0.env == env }
        }).first {
            struct StageRun: Encodable { var runReport: RunReport }
            return .json(200, StageRun(runReport: report))
        }
        throw APIError(404, "no import or stage run \(run) for \(env)")
    }

    /// `POST /admin/validate[?name=2019Floor3.csv|?floor=3][&env=…]`: a CSV body is validated as that file; an
    /// empty body validates the configured inputs.
    private func validate(_ request: Request) async throws -> Reply {
        let env = try queryEnvironment(request)
        try authorize(request, env: env)
        let name = request.uri.queryParameters.get("name")
        let floor = request.uri.queryParameters.get("floor")
        let limit = settings.maxBodyBytes
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit { throw APIError(413, "the body is larger than \(limit) bytes") }
        // A body needs a name (or a floor); no body validates the configured inputs.
        let upload =
            name != nil || floor != nil || (declared ?? 0) > 0
            ? try UploadValidation.upload(name: name, floor: floor) : nil
        guard validation.enter() else { throw APIError(409, "a validation is running; one runs at a time") }
        defer { validation.leave() }
        let folder = try UploadValidation.makeFolder()
        defer { UploadValidation.remove(folder) }
        var received = 0
        if let upload {
            let path = UploadValidation.uploadPath(upload, folder: folder)
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw APIError(500, "cannot store the upload; see the server log") }
            defer { try? handle.close() }
            for try await buffer in request.body {
                received += buffer.readableBytes
                guard received <= limit else { throw APIError(413, "the body is larger than \(limit) bytes") }
                try handle.write(contentsOf: buffer.readableBytesView)
            }
            guard received > 0 else {
                throw APIError.badField(
                    "body", "empty: send the CSV file, or leave out name and floor to validate the configured inputs")
            }
        } else {
            // A chunked body without a name: say what is missing rather than read it.
            for try await buffer in request.body where buffer.readableBytes > 0 {
                _ = try UploadValidation.upload(name: nil, floor: nil)
            }
        }
        let answer = try await UploadValidation.run(
            config: settings.config, env: env, upload: upload, folder: folder, logger: logger)
        return .json(200, answer)
    }
}

/// A header field name (`HTTPField.Name` of swift-http-types, which Hummingbird re-exports only through `HTTPFields`).
typealias HeaderName = HTTPFields.Element.Name

/// Lets one holder in at a time, without waiting.
final class Gate: @unchecked Sendable {
    // @unchecked: `busy` is only touched under `lock`.
    private let lock = NSLock()
    private var busy = false

    func enter() -> Bool {
        lock.withLock {
            if busy { return false }
            busy = true
            return true
        }
    }

    func leave() { lock.withLock { busy = false } }
}

extension AdminServer {
    /// Serves until SIGTERM or SIGINT, then stops the running stage (its import ends `interrupted`).
    ///
    /// - Parameter onListening: Gets the bound port once the server listens.
    /// - Throws: ``PipelineError`` 73 when the address is in use, 77 when the port needs privileges, 64 when the
    ///   address cannot be bound.
    package func runUntilStopped(onListening: @escaping @Sendable (Int) -> Void) async throws {
        let app = application { port in onListening(port) }
        let address = "\(settings.host):\(settings.port)"
        do {
            try await app.runService()
        } catch let error as IOError {
            switch error.errnoCode {
            case EADDRINUSE:
                throw PipelineError(.cantCreate, "\(address): the address is in use (another server listens there)")
            case EACCES:
                throw PipelineError(.noPermission, "\(address): binding this port needs privileges; use one above 1023")
            default:
                throw PipelineError.usage("\(address): cannot listen there (\(error))")
            }
        } catch {
            // An unknown host or an address that is not this machine's.
            throw PipelineError.usage("\(address): cannot listen there (\(error))")
        }
        let supervisor = self.supervisor
        _ = try? await runBlocking { supervisor.shutdown(timeout: 15) }
        logger.notice("server stopped")
    }
}

/// The request context of the admin API: Hummingbird's basic one plus the client's address, the key of its request
/// limit.
package struct AdminRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let remoteAddress: SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address (without the port: one client opens many connections), or `unknown`.
    var client: String { remoteAddress?.ipAddress ?? "unknown" }
}
