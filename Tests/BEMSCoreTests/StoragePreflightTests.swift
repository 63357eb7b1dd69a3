import Foundation
import Testing

@testable import BEMSCore

@Suite struct StoragePreflightTests {
    func evaluate(
        now: Int64 = 0, pending: Int, bpr: Double = 180, limitMB: Int? = 500, force: Bool = false
    ) -> StorageReport {
        StoragePreflight.evaluate(
            databaseBytes: now, pendingReadings: pending, bytesPerReading: bpr, source: "calibrated default",
            limitMB: limitMB, warnShare: 0.8, force: force)
    }

    /// The figures: 125 M readings at ~180 B need ~22 GB; even a 10% sample is over a 500 MB free tier.
    @Test func theFullDatasetAndATenPercentSampleAreRefusedOnAFreeTier() {
        let full = evaluate(pending: 125_000_000)
        #expect(full.verdict == .refuse)
        #expect(full.estimatedBytes == 22_500_000_000)
        let tenth = evaluate(now: 8 << 20, pending: 12_500_000)
        #expect(tenth.verdict == .refuse)
        #expect((tenth.estimatedShare ?? 0) > 4)
        var reported = tenth
        reported.sample = 0.1
        let message = reported.preflightMessage(env: "staging")
        #expect(message.contains("8.0 MB now + 12500000 readings × 180 B (calibrated default) ≈ 2153.8 MB"))
        #expect(message.contains("430.8% of the 500.0 MB limit (environments.staging.storageLimitMB)"))
        #expect(message.contains("normalize --sample 0.018"))
        #expect(message.contains("bigger plan") && message.contains("--force"))
    }

    @Test(arguments: [
        (400, StorageReport.Verdict.warn),  // 80% exactly
        (399, .ok), (500, .warn), (501, .refuse),
    ])
    func thresholds(megabytes: Int, verdict: StorageReport.Verdict) {
        // `megabytes` MiB of new readings at 1 MiB each, into an empty database with a 500 MB limit.
        let r = evaluate(pending: megabytes, bpr: 1_048_576)
        #expect(r.verdict == verdict, "\(megabytes) MB")
    }

    @Test func forceLoadsAnywayAndNoLimitNeverRefuses() {
        let forced = evaluate(pending: 10_000_000, force: true)
        #expect(forced.verdict == .forced)
        #expect(forced.preflightMessage(env: "prod").contains("--force was given, loading anyway"))
        let unlimited = evaluate(pending: 10_000_000, limitMB: nil)
        #expect(unlimited.verdict == .ok && unlimited.estimatedShare == nil)
        #expect(
            unlimited.preflightMessage(env: "dev").contains("no storage limit set (environments.dev.storageLimitMB)"))
        // Nothing to load: never refused, whatever the size.
        #expect(evaluate(now: 600 << 20, pending: 0).verdict == .ok)
        // Already near the limit: no sample fits.
        var full = evaluate(now: 450 << 20, pending: 1_000_000)
        full.sample = 0.1
        #expect(full.preflightMessage(env: "staging").contains("free space first"))
        #expect(evaluate(pending: 1000).preflightMessage(env: "dev").hasSuffix("(environments.dev.storageLimitMB)"))
        #expect(evaluate(pending: 2_500_000).preflightMessage(env: "dev").hasSuffix("close to the limit"))
    }

    @Test func bytesPerReadingMeasuredOnlyOnEnoughReadings() {
        var m = StoragePreflight.Measurement(
            databaseBytes: 1 << 30, readingsBytes: 180_000_000, viewBytes: 20_000_000, readings: 1_000_000)
        let measured = StoragePreflight.bytesPerReading(m, fallback: 180)
        #expect(measured.bytes == 200 && measured.source == "measured on 1000000 readings")
        m.readings = 99_999
        #expect(StoragePreflight.bytesPerReading(m, fallback: 180) == (180, "calibrated default"))
        #expect(StoragePreflight.bytesPerReading(m, fallback: 250, configured: true) == (250, "configured"))
    }

    @Test func afterLoadLine() {
        var r = evaluate(now: 10 << 20, pending: 1000)
        #expect(StoragePreflight.afterLoadMessage(r, env: "staging") == nil)
        r.databaseBytesAfter = 250 << 20
        r.readingsTableBytes = 200 << 20
        #expect(
            StoragePreflight.afterLoadMessage(r, env: "staging")
                == "storage (staging): database 250.0 MB (sensor_readings with indexes 200.0 MB), 50.0% of the 500.0 MB limit"
        )
        #expect(r.shareAfter == 0.5)
        #expect(
            StoragePreflight.afterLoadMessage(evaluateAfter(limitMB: nil), env: "dev")?.hasSuffix(
                "no storage limit set") == true)
    }

    func evaluateAfter(limitMB: Int?) -> StorageReport {
        var r = evaluate(pending: 1, limitMB: limitMB)
        r.databaseBytesAfter = 1 << 20
        return r
    }
}
