import Foundation

/// How close a load came to its rate limits (`environments.<env>.rateLimit`, the environment's bandwidth budget):
/// the peak rows/s and bytes/s sent over any window of ``ProgressState/peakWindow`` seconds, the limits, and the
/// seconds the limiters held the load back. A peak at 80% of a limit (``AlertThresholds/limitShare``) is a warning:
/// the next, bigger import will be throttled.
package struct BandwidthReport: Codable, Equatable, Sendable {
    package var rowsPerSecondLimit: Double?
    package var bytesPerSecondLimit: Double?
    package var peakRowsPerSecond: Double
    package var peakBytesPerSecond: Double
    package var throttledSeconds: Double

    package init(
        rowsPerSecondLimit: Double?, bytesPerSecondLimit: Double?, peakRowsPerSecond: Double,
        peakBytesPerSecond: Double, throttledSeconds: Double
    ) {
        self.rowsPerSecondLimit = rowsPerSecondLimit
        self.bytesPerSecondLimit = bytesPerSecondLimit
        self.peakRowsPerSecond = peakRowsPerSecond
        self.peakBytesPerSecond = peakBytesPerSecond
        self.throttledSeconds = throttledSeconds
    }

    /// A load's figures: its environment's limits and what its progress measured.
    package init(limits: PipelineConfig.RateLimit, progress: StageProgress) {
        let peaks = progress.peaks
        self.init(
            rowsPerSecondLimit: limits.rowsPerSecond, bytesPerSecondLimit: limits.bytesPerSecond,
            peakRowsPerSecond: peaks.rowsPerSecond, peakBytesPerSecond: peaks.bytesPerSecond,
            throttledSeconds: progress.snapshot().throttledSeconds)
    }

    /// Peak rows/s over the rows/s limit, when there is one.
    package var rowsShare: Double? { rowsPerSecondLimit.map { $0 > 0 ? peakRowsPerSecond / $0 : 0 } }
    /// Peak bytes/s over the bytes/s limit, when there is one.
    package var bytesShare: Double? { bytesPerSecondLimit.map { $0 > 0 ? peakBytesPerSecond / $0 : 0 } }

    /// A `bandwidth` warning for each limit the peak reached `share` of.
    package func alerts(name: String, share: Double) -> [Alert] {
        var alerts: [Alert] = []
        if let s = rowsShare, s >= share, let limit = rowsPerSecondLimit {
            alerts.append(
                Alert(
                    .warning, "bandwidth",
                    "\(name): peak \(Int(peakRowsPerSecond)) rows/s, \(StoragePreflight.percent(s)) of the "
                        + "rowsPerSecond limit \(Int(limit)) (throttled \(AlertRules.format(throttledSeconds)) s)"))
        }
        if let s = bytesShare, s >= share, let limit = bytesPerSecondLimit {
            alerts.append(
                Alert(
                    .warning, "bandwidth",
                    "\(name): peak \(StoragePreflight.mb(Int64(peakBytesPerSecond)))/s, \(StoragePreflight.percent(s)) "
                        + "of the bytesPerSecond limit \(StoragePreflight.mb(Int64(limit)))/s (throttled "
                        + "\(AlertRules.format(throttledSeconds)) s)"))
        }
        return alerts
    }
}
