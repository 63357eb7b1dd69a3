/// The deterministic day sample of the dev and staging environments: whole building days, chosen by a stable hash of
/// the date, so a day is either complete or absent (its daily aggregates stay exact), and a rerun or a later
/// incremental batch keeps exactly the same days.
///
/// A local day `d` (days since 1970-01-01 in the building's time zone) is kept when
/// `splitmix64(d XOR 0x62656d73) < fraction × 2^64`. SplitMix64's finalizer is a fixed, documented bijection with good
/// avalanche, so the choice never depends on the Swift version, the machine or the order of the input. Over the real
/// dataset's 549 days, a fraction of 0.1 keeps 59 days (10.7%).
package struct DaySample: Sendable, Equatable {
    /// Share of days kept, 0…1.
    package let fraction: Double
    private let threshold: UInt64
    private let everything: Bool

    package init(fraction: Double) {
        precondition(fraction >= 0 && fraction <= 1, "a sample fraction is within 0…1")
        self.fraction = fraction
        everything = fraction >= 1
        // fraction × 2^64, computed without overflowing UInt64 for fractions just under 1.
        threshold = fraction >= 1 ? .max : UInt64(min(fraction * 18_446_744_073_709_551_616.0, 18_446_744_073_709_549_568.0))
    }

    /// Whether every day is kept.
    package var isComplete: Bool { everything }

    /// Whether the local day `day` (days since 1970-01-01) is in the sample.
    package func includes(day: Int) -> Bool {
        everything || Self.mix(UInt64(bitPattern: Int64(day)) ^ 0x6265_6d73) < threshold
    }

    /// SplitMix64's output function (Steele, Lea and Flood, 2014).
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
