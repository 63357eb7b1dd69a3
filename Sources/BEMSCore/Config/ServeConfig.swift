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
    /// `serve`: `host`, `port`, `maxBodyBytes`.
    func serve(_ value: Any, _ path: String) throws -> PipelineConfig.Serve {
        let o = try object(value, path, allowed: ["host", "port", "maxBodyBytes"])
        var s = PipelineConfig.Serve()
        if let v = o["host"] { s.host = try string(v, path + ".host") }
        if let v = o["port"] { s.port = try integer(v, path + ".port", min: 0, max: 65_535) }
        if let v = o["maxBodyBytes"] {
            s.maxBodyBytes = try integer(v, path + ".maxBodyBytes", min: 1024, max: 1 << 32)
        }
        return s
    }
}
