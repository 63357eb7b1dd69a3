import Foundation

/// The record of one stage run for operators, written as `<stage>/runs/<run>/run-report.json` by every stage command,
/// for failed runs too (see README, Monitoring).
///
/// Rows are counted in each stage's own unit: validate reads CSV rows and puts out readings (its rejected rows are
/// rows with any rejection), the later stages count readings; refresh puts out `daily_aggregates` rows.
package struct RunReport: Codable, Equatable, Sendable {
    /// How the run ended.
    package enum Status: String, Codable, Sendable {
        case succeeded, failed
    }

    package var formatVersion = 1
    package var stage: Stage
    package var runID: String
    package var env: String
    package var status: Status
    /// The process exit status (0 on success).
    package var exitStatus: Int32
    /// ISO 8601 UTC.
    package var startedAt: String
    package var finishedAt: String
    package var seconds: Double
    package var rowsIn = 0
    package var rowsOut = 0
    package var rowsRejected = 0
    package var bytesIn = 0
    package var bytesOut = 0
    /// Transient database errors that were retried.
    package var retries = 0
    /// Per-chunk timings, where the stage reports them (load).
    package var chunks: ChunkTimings?
    /// Rejections and failures by code (validate's reject codes, or the failure's code).
    package var errors: [String: Int] = [:]
    /// Why the run failed.
    package var failure: Failure?
    /// The manifest's headline counts.
    package var figures: [String: Int] = [:]
    /// Load only: the storage pre-flight and the size after the load.
    package var storage: StorageReport?
    /// Load only: the peak rates against the environment's rate limits.
    package var bandwidth: BandwidthReport?
    /// The warnings and the critical alert this run raised.
    package var alerts: [Alert] = []
    package var bemsVersion = BEMS.version

    package init(
        stage: Stage, runID: String, env: String, status: Status, exitStatus: Int32, startedAt: Date,
        finishedAt: Date
    ) {
        self.stage = stage
        self.runID = runID
        self.env = env
        self.status = status
        self.exitStatus = exitStatus
        self.startedAt = RunReport.timestamp(startedAt)
        self.finishedAt = RunReport.timestamp(finishedAt)
        self.seconds = max(0, finishedAt.timeIntervalSince(startedAt))
    }

    /// Rejected share: rejected rows over rows in (0 when nothing came in).
    package var errorRate: Double { rowsIn > 0 ? Double(rowsRejected) / Double(rowsIn) : 0 }

    /// The file name in the run folder.
    package static let fileName = "run-report.json"

    /// ISO 8601 UTC with seconds.
    package static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    /// Parses ``timestamp(_:)`` output.
    package static func date(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }
}

/// Why a run failed: a code for grouping, the operation that failed, and a message without secrets.
package struct Failure: Codable, Equatable, Sendable {
    /// `unavailable`, `io`, `data`, … (the exit status's name), or `sqlstate_<SQLSTATE>` for a bare database error.
    package var code: String
    /// The kind of operation: `parse`, `copy`, `connect`, `verify`, `checksum`, `lock`, `config`, … (Sentry's
    /// fingerprint).
    package var operation: String
    /// The SQLSTATE when the error carried one.
    package var sqlState: String?
    /// The error message, with passwords and connection strings masked (``SecretScrubber``).
    package var message: String
}

/// p50, p95 and max of the chunk timings of a run (nearest-rank percentiles).
package struct ChunkTimings: Codable, Equatable, Sendable {
    package var count: Int
    package var p50Seconds: Double
    package var p95Seconds: Double
    package var maxSeconds: Double

    /// The timings of `seconds`, or `nil` when there are none.
    package init?(_ seconds: [Double]) {
        guard !seconds.isEmpty else { return nil }
        let sorted = seconds.sorted()
        count = sorted.count
        p50Seconds = Self.percentile(sorted, 0.5)
        p95Seconds = Self.percentile(sorted, 0.95)
        maxSeconds = sorted[sorted.count - 1]
    }

    package init(count: Int, p50Seconds: Double, p95Seconds: Double, maxSeconds: Double) {
        self.count = count
        self.p50Seconds = p50Seconds
        self.p95Seconds = p95Seconds
        self.maxSeconds = maxSeconds
    }

    /// Nearest rank: the smallest value with at least `q` of the values at or below it.
    package static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }
}
