import Foundation

/// Turns naive wall-clock times of the building's time zone into UTC instants.
///
/// The zone comes from pipeline.json (default `Asia/Bangkok`, UTC+7, no DST). The offset is looked up once per local
/// hour and cached, so the per-row cost is one comparison. For zones with DST, a wall-clock time in a gap or an
/// overlap takes the offset in force just before the transition (the usual "earlier" rule).
package struct LocalTimeConverter: Sendable {
    /// The IANA zone name.
    package let identifier: String
    private let zone: TimeZone
    private var cachedHour: Int64 = .min
    private var cachedOffset: Int64 = 0

    /// - Throws: ``PipelineError`` (usage) when the zone name is unknown.
    package init(identifier: String) throws {
        guard let zone = TimeZone(identifier: identifier) else {
            throw PipelineError.usage(
                "unknown time zone \"\(identifier)\" (expected an IANA name such as Asia/Bangkok)")
        }
        self.identifier = identifier
        self.zone = zone
    }

    /// The UTC instant (Unix seconds) of a local wall-clock time given as seconds since 1970-01-01 local.
    @inline(__always)
    package mutating func utc(fromLocal local: Int64) -> Int64 {
        let hour = local >= 0 ? local / 3600 : (local - 3599) / 3600
        if hour != cachedHour {
            cachedHour = hour
            cachedOffset = offset(forLocal: hour * 3600)
        }
        return local - cachedOffset
    }

    /// The zone's offset from UTC, in seconds, for a local wall-clock time.
    package func offset(forLocal local: Int64) -> Int64 {
        let guess = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local))))
        let corrected = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local - guess))))
        if corrected == guess { return guess }
        // Near a transition: prefer the offset that maps back to the same wall-clock time, else the earlier one.
        let again = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local - corrected))))
        return again == corrected ? corrected : max(guess, corrected)
    }

    /// The local wall-clock seconds of a UTC instant.
    package func local(fromUTC utc: Int64) -> Int64 {
        utc + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(utc))))
    }
}
