import BEMSCore
import Foundation
import Prometheus

/// The server's own metrics, in a swift-prometheus registry of its own (no global metrics system, so servers in one
/// process, as in the tests, do not share counters).
///
/// | Series | Meaning |
/// |---|---|
/// | `bems_api_requests_total{route, method, status}` | requests answered, by route template and status |
/// | `bems_api_imports_started_total{env}` | imports started |
/// | `bems_api_import_running{env}` | 1 while an import of the environment runs |
package final class ServerMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()

    package init() {}

    /// Counts one answered request.
    package func request(route: String, method: String, status: Int) {
        registry.makeCounter(
            descriptor: .init(
                namespace: "bems", subsystem: "api", metricName: "requests", unitName: "total",
                helpText: "Requests answered by the bems admin API."),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
    }

    /// Counts a started import.
    package func importStarted(env: String) {
        registry.makeCounter(
            descriptor: .init(
                namespace: "bems", subsystem: "api", metricName: "imports_started", unitName: "total",
                helpText: "Imports started through the API."),
            labels: [("env", env)]
        ).increment()
    }

    /// The exposition of the server's metrics, with `running` as the running import's environment.
    package func exposition(environments: [String], running: String?) -> String {
        for env in environments {
            registry.makeGauge(
                descriptor: .init(
                    namespace: "bems", subsystem: "api", metricName: "import_running", unitName: "",
                    helpText: "1 while an import of the environment runs."),
                labels: [("env", env)]
            ).set(env == running ? 1.0 : 0.0)
        }
        return registry.emitToString()
    }
}
