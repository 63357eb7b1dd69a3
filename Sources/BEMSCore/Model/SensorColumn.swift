/// One data column of a floor file, mapped to the long row it produces.
///
/// | Column | sensor_id | equipment_type | unit |
/// |---|---|---|---|
/// | `zN_ACk(kW)` | `f3_z1_ac4` | `ac` | `kW` |
/// | `zN_Light(kW)` | `f3_z1_light` | `light` | `kW` |
/// | `zN_Plug(kW)` | `f3_z1_plug` | `plug` | `kW` |
/// | `zN_S1(degC)` | `f3_z1_s1_temp` | `temperature` | `degC` |
/// | `zN_S1(RH%)` | `f3_z1_s1_rh` | `humidity` | `RH%` |
/// | `zN_S1(lux)` | `f3_z1_s1_lux` | `illuminance` | `lux` |
package struct SensorColumn: Hashable, Sendable {
    /// The column name exactly as in the file header.
    package let header: String
    /// The floor the file belongs to.
    package let floor: Int
    /// The zone number (the `N` in `zN_`).
    package let zone: Int
    /// The equipment type.
    package let equipmentType: EquipmentType
    /// The database sensor id, for example `f3_z1_ac4`.
    package let sensorID: String

    /// Maps a header cell to a sensor column.
    ///
    /// - Parameters:
    ///   - header: The header cell, for example `z2_AC14(kW)`. Surrounding spaces are not accepted.
    ///   - floor: The floor number of the file.
    /// - Returns: The column, or `nil` when the name does not follow the CU-BEMS pattern.
    package init?(header: String, floor: Int) {
        guard floor >= 1, floor <= 99 else { return nil }
        let bytes = Array(header.utf8)
        var i = 0
        // "z" zone "_"
        guard bytes.first == UInt8(ascii: "z") else { return nil }
        i = 1
        guard let zone = Self.number(bytes, &i), zone >= 1, zone <= 99 else { return nil }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "_") else { return nil }
        i += 1
        let rest = String(decoding: bytes[i...], as: UTF8.self)
        let id: String
        let type: EquipmentType
        let prefix = "f\(floor)_z\(zone)_"
        switch rest {
        case "Light(kW)":
            (id, type) = (prefix + "light", .light)
        case "Plug(kW)":
            (id, type) = (prefix + "plug", .plug)
        case "S1(degC)":
            (id, type) = (prefix + "s1_temp", .temperature)
        case "S1(RH%)":
            (id, type) = (prefix + "s1_rh", .humidity)
        case "S1(lux)":
            (id, type) = (prefix + "s1_lux", .illuminance)
        default:
            // "AC" k "(kW)"
            let r = Array(rest.utf8)
            guard r.count > 6, r[0] == UInt8(ascii: "A"), r[1] == UInt8(ascii: "C") else { return nil }
            var j = 2
            guard let unit = Self.number(r, &j), unit >= 1, unit <= 99 else { return nil }
            guard String(decoding: r[j...], as: UTF8.self) == "(kW)" else { return nil }
            (id, type) = (prefix + "ac\(unit)", .ac)
        }
        self.header = header
        self.floor = floor
        self.zone = zone
        self.equipmentType = type
        self.sensorID = id
    }

    /// Reads 1–2 decimal digits without a leading zero.
    private static func number(_ bytes: [UInt8], _ i: inout Int) -> Int? {
        let start = i
        var value = 0
        while i < bytes.count, i - start < 3, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
            i += 1
        }
        guard i > start, i - start <= 2, bytes[start] != UInt8(ascii: "0") else { return nil }
        return value
    }

    /// Derives floor, equipment type and unit back from a sensor id such as `f3_z1_ac4`.
    ///
    /// Load and verify use this, so chunks need to carry only the id.
    package static func describe(sensorID: String) -> (floor: Int, equipmentType: EquipmentType)? {
        let parts = sensorID.split(separator: "_")
        guard parts.count >= 3, parts[0].first == "f", let floor = Int(parts[0].dropFirst()) else { return nil }
        let device = parts[2...].joined(separator: "_")
        let type: EquipmentType
        switch device {
        case "light": type = .light
        case "plug": type = .plug
        case "s1_temp": type = .temperature
        case "s1_rh": type = .humidity
        case "s1_lux": type = .illuminance
        default:
            guard device.hasPrefix("ac"), Int(device.dropFirst(2)) != nil else { return nil }
            type = .ac
        }
        return (floor, type)
    }
}
