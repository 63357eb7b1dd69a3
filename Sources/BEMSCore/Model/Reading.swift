/// The kind of device a sensor column measures.
package enum EquipmentType: String, CaseIterable, Sendable, Codable {
    case ac
    case light
    case plug
    case temperature
    case humidity
    case illuminance

    /// The unit stored in `sensor_readings.unit`.
    package var unit: String {
        switch self {
        case .ac, .light, .plug: return "kW"
        case .temperature: return "degC"
        case .humidity: return "RH%"
        case .illuminance: return "lux"
        }
    }
}

/// The quality label of a reading, stored in `sensor_readings.status`.
package enum ReadingStatus: UInt8, CaseIterable, Sendable, Codable {
    /// Inside the plausible range of its equipment type.
    case normal = 0
    /// Valid, but outside the plausible range (a spike): kept, never dropped.
    case anomaly = 1

    /// The text stored in the database.
    package var label: String {
        switch self {
        case .normal: return "normal"
        case .anomaly: return "anomaly"
        }
    }

    /// Parses the database text back into a status.
    package init?(label: String) {
        switch label {
        case "normal": self = .normal
        case "anomaly": self = .anomaly
        default: return nil
        }
    }
}

/// Fixed-point arithmetic for readings: values are `Int64` counts of 1/10 000, as in `DECIMAL(10,4)`.
///
/// Readings never pass through `Double`; this type holds the scale and the formatting.
package enum ScaledDecimal {
    /// Decimal places kept: `DECIMAL(10,4)`.
    package static let scale = 4
    /// 10^scale.
    package static let factor: Int64 = 10_000
    /// The largest magnitude `DECIMAL(10,4)` can hold, scaled: 999 999.9999.
    package static let maxMagnitude: Int64 = 9_999_999_999

    /// Formats a scaled value with exactly four decimals, for example `4762.4300` or `-0.0100`.
    package static func format(_ scaled: Int64) -> String {
        let negative = scaled < 0
        let magnitude = scaled.magnitude
        let whole = magnitude / UInt64(factor)
        let fraction = magnitude % UInt64(factor)
        var fractionText = String(fraction)
        while fractionText.utf8.count < scale { fractionText = "0" + fractionText }
        return (negative ? "-" : "") + String(whole) + "." + fractionText
    }
}
