/// The exact column layout of each CU-BEMS floor file.
///
/// The headers come from the input specification (`shared/reference/cu-bems-input.md` §1) and are identical in the
/// 2018 and 2019 files. The first column is always `Date`.
package enum FloorSchema {
    /// The floors of the building, 1 through 7.
    package static let floors: ClosedRange<Int> = 1...7

    /// The data columns (without `Date`) of a floor, in file order.
    ///
    /// - Parameter floor: A floor number, 1 through 7.
    /// - Returns: The column names, or `nil` for a floor the building does not have.
    package static func dataColumns(floor: Int) -> [String]? {
        switch floor {
        case 1: return floor1
        case 2: return floor2
        case 3, 4, 5, 7: return floors3457
        case 6: return floor6
        default: return nil
        }
    }

    /// The full header line of a floor file, `Date` first.
    package static func header(floor: Int) -> [String]? {
        dataColumns(floor: floor).map { ["Date"] + $0 }
    }

    private static let floor1 = [
        "z1_Light(kW)", "z1_Plug(kW)", "z2_AC1(kW)", "z2_AC2(kW)", "z2_AC3(kW)", "z2_AC4(kW)", "z2_Light(kW)",
        "z2_Plug(kW)", "z3_Light(kW)", "z3_Plug(kW)", "z4_Light(kW)",
    ]

    private static let floor2: [String] = {
        var columns = ["z1_AC1(kW)", "z1_Light(kW)", "z1_Plug(kW)"] + s1("z1")
        columns += (1...14).map { "z2_AC\($0)(kW)" } + ["z2_Light(kW)", "z2_Plug(kW)"] + s1("z2")
        columns += ["z3_Light(kW)", "z3_Plug(kW)"] + s1("z3")
        columns += ["z4_AC1(kW)", "z4_Light(kW)", "z4_Plug(kW)"] + s1("z4")
        return columns
    }()

    private static let floors3457: [String] = {
        var columns = (1...4).map { "z1_AC\($0)(kW)" } + ["z1_Light(kW)", "z1_Plug(kW)"] + s1("z1")
        columns += ["z2_AC1(kW)", "z2_Light(kW)", "z2_Plug(kW)"] + s1("z2")
        columns += ["z3_Light(kW)", "z3_Plug(kW)"]
        columns += ["z4_AC1(kW)", "z4_Light(kW)", "z4_Plug(kW)"] + s1("z4")
        columns += ["z5_AC1(kW)", "z5_Light(kW)", "z5_Plug(kW)"] + s1("z5")
        return columns
    }()

    private static let floor6: [String] = {
        var columns = ["z1_AC1(kW)", "z1_Light(kW)", "z1_Plug(kW)"] + s1("z1")
        columns += ["z2_AC1(kW)", "z2_Light(kW)", "z2_Plug(kW)"] + s1("z2")
        columns += ["z3_Light(kW)", "z3_Plug(kW)"]
        columns += (1...4).map { "z4_AC\($0)(kW)" } + ["z4_Light(kW)", "z4_Plug(kW)"] + s1("z4")
        columns += ["z5_AC1(kW)", "z5_Light(kW)", "z5_Plug(kW)"] + s1("z5")
        return columns
    }()

    private static func s1(_ zone: String) -> [String] {
        ["\(zone)_S1(degC)", "\(zone)_S1(RH%)", "\(zone)_S1(lux)"]
    }
}
