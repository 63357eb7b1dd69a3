import Foundation

extension PipelineConfig {
    /// The admin HTTP API (`bems serve`, `serve` in pipeline.json).
    package struct Serve: Sendable, Equatable {
        /// The address the server binds; loopback by default, so only local clients (or a reverse proxy) reach it.
        package var host = "127.0.0.1"
        /// The TCP port; 0 takes a free one (the server prints which).
        package var port = 8787
        /// The largest request body accepted (a CSV upload to `/admin/validate`); a larger one gets 413.
        package var maxBodyBytes = 64 << 20
        /// Requests per second each client address may make to `/admin/*` over time (`/healthz` and `/metrics` are not
        /// limited); more get 429 with `Retry-After`.
        package var requestsPerSecond = 10.0
        /// Requests a client may make at once before the rate applies.
        package var requestBurst = 60
        /// Seconds a connection may stay open without a request (after connecting or after its last answer) before the
        /// server closes it, so idle or abandoned connections do not pile up.
        package var idleTimeoutSeconds = 60.0

        package init() {}
    }
}

extension PipelineConfig.Environment {
    /// The variable holding the environment's service-role token for the admin API: `serviceTokenEnv`, by default
    /// `BEMS_<ENV>_SERVICE_TOKEN`.
    package func serviceTokenVariable(env: String) -> String {
        serviceTokenEnv ?? "BEMS_\(env.uppercased())_SERVICE_TOKEN"
    }
}

extension ConfigReader {
    /// `serve`: `host`, `port`, `maxBodyBytes`, `requestsPerSecond`, `requestBurst`, `idleTimeoutSeconds`.
    func serve(_ value: Any, _ path: String) throws -> PipelineConfig.Serve {
        let o = try object(
            value, path,
            allowed: [
                "host", "port", "maxBodyBytes", "requestsPerSecond", "requestBurst", "idleTimeoutSeconds",
            ])
        var s = PipelineConfig.Serve()
        if let v = o["host"] { s.host = try string(v, path + ".host") }
        if let v = o["port"] { s.port = try integer(v, path + ".port", min: 0, max: 65_535) }
        if let v = o["maxBodyBytes"] {
            s.maxBodyBytes = try integer(v, path + ".maxBodyBytes", min: 1024, max: 1 << 32)
        }
        if let v = o["requestsPerSecond"] {
            let d = try number(v, path + ".requestsPerSecond").doubleValue
            guard d.isFinite, d > 0, d <= 1_000_000 else {
                throw fail(path + ".requestsPerSecond", "expected a number above 0, at most 1000000")
            }
            s.requestsPerSecond = d
        }
        if let v = o["requestBurst"] { s.requestBurst = try integer(v, path + ".requestBurst", min: 1, max: 1_000_000) }
        if let v = o["idleTimeoutSeconds"] {
            s.idleTimeoutSeconds = try seconds(v, path + ".idleTimeoutSeconds", min: 0.1, max: 86_400)
        }
        return s
    }
}
