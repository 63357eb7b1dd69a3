import CoreMetrics
import Foundation
import Prometheus

/// A run's Prometheus metrics: recorded through swift-metrics into a fresh swift-prometheus registry and rendered in
/// the text exposition format, one file per stage for node_exporter's textfile collector (`bems_<stage>.prom`).
///
/// Every series carries `env` and `stage` labels:
///
/// | Series | Meaning |
/// |---|---|
/// | `bems_run_success` | 1 when the run succeeded (or was up to date), 0 when it failed |
/// | `bems_run_exit_status` | the process exit status |
/// | `bems_run_up_to_date` | 1 when nothing ran because nothing changed (figures are the last run's) |
/// | `bems_run_timestamp_seconds` | Unix time the command finished |
/// | `bems_run_duration_seconds` | wall-clock seconds of the run |
/// | `bems_run_rows_in`, `bems_run_rows_out`, `bems_run_rows_rejected` | rows in the stage's unit |
/// | `bems_run_bytes_in`, `bems_run_bytes_out` | bytes read and written |
/// | `bems_run_retries` | retried transient database errors |
/// | `bems_run_chunks` | chunks timed; `bems_run_chunk_p50_seconds`, `_p95_seconds`, `_max_seconds` |
/// | `bems_chunk_duration_seconds` | histogram of the chunk timings (load) |
/// | `bems_run_errors{code}` | rejections and failures by code |
/// | `bems_run_alerts{severity}` | alerts raised by the run |
/// | `bems_load_peak_rows_per_second`, `bems_load_peak_bytes_per_second`, `bems_load_rate_limit_rows_per_second`, `bems_load_rate_limit_bytes_per_second`, `bems_load_throttled_seconds` | load: bandwidth against the rate limits |
/// | `bems_storage_database_bytes`, `bems_storage_limit_bytes`, `bems_storage_estimated_bytes`, `bems_storage_readings_table_bytes` | load: sizes |
package enum RunMetrics {
    /// Bucket bounds of `bems_chunk_duration_seconds`.
    package static let chunkBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300),
    ]

    /// The exposition text of `report`.
    ///
    /// - Parameters:
    ///   - chunkSeconds: The individual chunk timings behind ``RunReport/chunks``, for the histogram.
    ///   - upToDate: The command found nothing to do; `report` is the last real run's.
    ///   - now: The time the command finished.
    package static func exposition(
        _ report: RunReport, chunkSeconds: [Double] = [], upToDate: Bool = false, now: Date = Date()
    ) -> String {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["bems_chunk_duration_seconds"] = chunkBuckets
        let labels = [("env", report.env), ("stage", report.stage.rawValue)]

        func gauge(_ name: String, _ value: Double, _ extra: [(String, String)] = []) {
            CoreMetrics.Gauge(label: name, dimensions: labels + extra, factory: factory).record(value)
        }
        gauge("bems_run_success", report.status == .succeeded ? 1 : 0)
        gauge("bems_run_exit_status", Double(report.exitStatus))
        gauge("bems_run_up_to_date", upToDate ? 1 : 0)
        gauge("bems_run_timestamp_seconds", now.timeIntervalSince1970.rounded())
        gauge("bems_run_duration_seconds", report.seconds)
        gauge("bems_run_rows_in", Double(report.rowsIn))
        gauge("bems_run_rows_out", Double(report.rowsOut))
        gauge("bems_run_rows_rejected", Double(report.rowsRejected))
        gauge("bems_run_bytes_in", Double(report.bytesIn))
        gauge("bems_run_bytes_out", Double(report.bytesOut))
        gauge("bems_run_retries", Double(report.retries))
        gauge("bems_run_chunks", Double(report.chunks?.count ?? 0))
        if let c = report.chunks {
            gauge("bems_run_chunk_p50_seconds", c.p50Seconds)
            gauge("bems_run_chunk_p95_seconds", c.p95Seconds)
            gauge("bems_run_chunk_max_seconds", c.maxSeconds)
        }
        if !chunkSeconds.isEmpty {
            let timer = CoreMetrics.Timer(label: "bems_chunk_duration_seconds", dimensions: labels, factory: factory)
            for s in chunkSeconds { timer.recordNanoseconds(Int64((s * 1e9).rounded())) }
        }
        for (code, n) in report.errors.sorted(by: { $0.key < $1.key }) {
            gauge("bems_run_errors", Double(n), [("code", code)])
        }
        for severity in [Alert.Severity.warning, .critical] {
            gauge(
                "bems_run_alerts", Double(report.alerts.filter { $0.severity == severity }.count),
                [("severity", severity.rawValue)])
        }
        if let s = report.storage {
            gauge("bems_storage_database_bytes", Double(s.databaseBytesAfter ?? s.databaseBytesBefore))
            gauge("bems_storage_estimated_bytes", Double(s.estimatedBytes))
            if let limit = s.limitBytes { gauge("bems_storage_limit_bytes", Double(limit)) }
            if let t = s.readingsTableBytes { gauge("bems_storage_readings_table_bytes", Double(t)) }
        }
        if let b = report.bandwidth {
            gauge("bems_load_peak_rows_per_second", b.peakRowsPerSecond)
            gauge("bems_load_peak_bytes_per_second", b.peakBytesPerSecond)
            gauge("bems_load_throttled_seconds", b.throttledSeconds)
            if let l = b.rowsPerSecondLimit { gauge("bems_load_rate_limit_rows_per_second", l) }
            if let l = b.bytesPerSecondLimit { gauge("bems_load_rate_limit_bytes_per_second", l) }
        }
        return registry.emitToString()
    }

    /// Writes `text` as `<directory>/bems_<stage>.prom` the textfile-collector way: to `bems_<stage>.prom.<pid>`
    /// in the same folder, then renamed over the old file, so the collector never reads half a file.
    ///
    /// - Returns: The path written.
    /// - Throws: ``PipelineError`` 74 when the folder cannot be created or written.
    @discardableResult
    package static func writeTextfile(_ text: String, stage: Stage, directory: String) throws -> String {
        try AtomicFile.makeDirectory(directory)
        let path = "\(directory)/bems_\(stage.rawValue).prom"
        let temporary = "\(path).\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            try? FileManager.default.removeItem(atPath: temporary)  // a full disk may leave it half written
            throw PipelineError.io("\(temporary): cannot write the metrics file")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw PipelineError.io("\(path): cannot rename the metrics file into place (\(reason))")
        }
        return path
    }
}
