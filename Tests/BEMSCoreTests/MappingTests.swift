import Foundation
import Testing

@testable import BEMSCore

@Suite struct MappingTests {
    @Test(arguments: Array(1...7))
    func everyFloorHeaderMapsToUniqueSensorIDs(floor: Int) throws {
        let header = CSV.header(floor: floor)
        let layout = try Array(header.utf8).withUnsafeBytes { try FileLayout(header: $0, floor: floor) }
        let expectedCount = [1: 11, 2: 36, 3: 29, 4: 29, 5: 29, 6: 29, 7: 29][floor]!
        #expect(layout.columns.count == expectedCount)
        #expect(layout.dateField == 0)
        #expect(layout.warnings.isEmpty)
        #expect(Set(layout.columns.map(\.sensorID)).count == expectedCount)
        for column in layout.columns {
            #expect(column.sensorID.hasPrefix("f\(floor)_z\(column.zone)_"))
            #expect(column.sensorID == column.sensorID.lowercased())
            let described = try #require(SensorColumn.describe(sensorID: column.sensorID))
            #expect(described.floor == floor)
            #expect(described.equipmentType == column.equipmentType)
        }
    }

    @Test func buildingTotalsMatchTheSpecification() {
        let all = (1...7).flatMap { FloorSchema.dataColumns(floor: $0)! }
        #expect(all.count == 192)
        #expect(all.filter { $0.contains("_AC") }.count == 55)
        #expect(all.filter { $0.contains("Light") }.count == 33)
        #expect(all.filter { $0.contains("Plug") }.count == 32)
        #expect(all.filter { $0.contains("_S1(") }.count == 72)
    }

    @Test(arguments: [
        ("z1_AC4(kW)", 3, "f3_z1_ac4", EquipmentType.ac, "kW"),
        ("z2_AC14(kW)", 2, "f2_z2_ac14", .ac, "kW"),
        ("z1_Light(kW)", 3, "f3_z1_light", .light, "kW"),
        ("z1_Plug(kW)", 3, "f3_z1_plug", .plug, "kW"),
        ("z1_S1(degC)", 3, "f3_z1_s1_temp", .temperature, "degC"),
        ("z1_S1(RH%)", 3, "f3_z1_s1_rh", .humidity, "RH%"),
        ("z1_S1(lux)", 3, "f3_z1_s1_lux", .illuminance, "lux"),
    ])
    func mapsColumnsAsDocumented(header: String, floor: Int, id: String, type: EquipmentType, unit: String) throws {
        let column = try #require(SensorColumn(header: header, floor: floor))
        #expect(column.sensorID == id)
        #expect(column.equipmentType == type)
        #expect(type.unit == unit)
    }

    @Test(arguments: [
        "z1_AC(kW)", "z0_Light(kW)", "z01_Light(kW)", "Z1_Light(kW)", "z1_Light", "z1_light(kW)", "z1_AC1(W)",
        "z1_S2(degC)",
        "z123_Plug(kW)", "", "z1_AC1(kW) ", "zz_AC1(kW)",
    ])
    func rejectsOtherNames(header: String) {
        #expect(SensorColumn(header: header, floor: 3) == nil)
    }

    @Test(arguments: ["f3", "x3_z1_ac1", "f3_z1_ac", "f3_z1_fan", "fx_z1_light"])
    func describeRejectsUnknownIDs(id: String) {
        #expect(SensorColumn.describe(sensorID: id) == nil)
    }

    func layout(_ header: String, floor: Int = 1) throws(HeaderError) -> FileLayout {
        let bytes = Array(header.utf8)
        var result: Result<FileLayout, HeaderError>!
        bytes.withUnsafeBytes { raw in
            do throws(HeaderError) { result = .success(try FileLayout(header: raw, floor: floor)) } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    @Test func headerErrorsNameTheColumn() {
        let unknown = #expect(throws: HeaderError.self) { try layout("Date,z1_Light(kW),Power") }
        #expect(unknown?.column == 19)
        #expect(unknown?.message.contains("unknown column \"Power\"") == true)
        let duplicate = #expect(throws: HeaderError.self) { try layout("Date,z1_Light(kW),z1_Light(kW)") }
        #expect(duplicate?.message.contains("appears twice") == true)
        let noDate = #expect(throws: HeaderError.self) { try layout("z1_Light(kW),z1_Plug(kW)") }
        #expect(noDate?.message.contains("no Date") == true)
        #expect(throws: HeaderError.self) { try layout("Date") }
        #expect(throws: HeaderError.self) { try layout("Date,\u{0}") }
    }

    @Test func reorderedOrQuotedHeadersAreAcceptedWithAWarning() throws {
        let l = try layout("\"z1_Plug(kW)\",Date,z1_Light(kW)")
        #expect(l.dateField == 1)
        #expect(l.columns.map(\.sensorID) == ["f1_z1_plug", "f1_z1_light"])
        #expect(l.warnings.count == 1)
    }

    @Test(
        arguments: [
            ("2018Floor1.csv", 1), ("2019Floor6.csv", 6), ("2019floor7.CSV", 7), ("x/2018Floor12.csv", 12),
        ] as [(String, Int)])
    func floorFromFileName(name: String, floor: Int) {
        #expect(InputFile.floor(fromFileName: (name as NSString).lastPathComponent) == floor)
    }

    @Test(arguments: ["2019Floor.csv", "data.csv", "2019Floor1.txt", "2019Floor123.csv", "2019Floorx.csv"])
    func noFloorInOtherNames(name: String) {
        #expect(InputFile.floor(fromFileName: name) == nil)
    }
}
