@testable import BEMSServer
import Foundation
import Testing

@testable import BEMSCore

@Suite struct ImportRequestTests {
    let environments = ["dev", "staging", "prod"]

    func decode(_ json: String) throws(APIError) -> ImportRequest {
        try ImportRequest.decode(Array(json.utf8), environments: environments)
    }

    @Test(arguments: ["", "  \n", "{}", #"{"env": null, "stages": null, "sample": null}"#])
    func anEmptyBodyMeansEveryDefault(body: String) throws {
        #expect(try decode(body) == ImportRequest())
    }

    @Test func readsEveryField() throws {
        let r = try decode(#"{"env": "staging", "stages": ["load", "dedupe"], "sample": 0.25}"#)
        #expect(r.env == "staging")
        // Pipeline order, whatever the request's order.
        #expect(r.stages == [.dedupe, .load])
        #expect(r.sample == 0.25)
        #expect(try decode(#"{"sample": 1}"#).sample == 1)
        #expect(try decode(#"{"sample": 0}"#).sample == 0)
    }

    @Test(arguments: [
        ("{", "body", "not valid JSON"),
        ("[1]", "body", "must be a JSON object"),
        ("3", "body", "must be a JSON object"),
        (#"{"stage": ["load"]}"#, "stage", "unknown field"),
        (#"{"env": 1}"#, "env", "expected a string"),
        (#"{"env": "qa"}"#, "env", "unknown environment \"qa\""),
        (#"{"stages": "load"}"#, "stages", "expected an array"),
        (#"{"stages": []}"#, "stages", "at least one"),
        (#"{"stages": ["load", {}]}"#, "stages[1]", "expected a string"),
        (#"{"stages": ["verify"]}"#, "stages[0]", "unknown stage \"verify\""),
        (#"{"stages": ["load", "load"]}"#, "stages[1]", "listed twice"),
        (#"{"sample": "0.1"}"#, "sample", "expected a number from 0 to 1"),
        (#"{"sample": false}"#, "sample", "expected a number from 0 to 1"),
        (#"{"sample": 1.5}"#, "sample", "expected a number from 0 to 1"),
        (#"{"sample": -0.1}"#, "sample", "expected a number from 0 to 1"),
    ])
    func badBodiesAre400NamingTheField(body: String, field: String, message: String) throws {
        let error = #expect(throws: APIError.self) { try decode(body) }
        #expect(error?.status == 400)
        #expect(error?.field == field)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test func uploadsNeedANameOrAFloor() throws {
        #expect(try UploadValidation.upload(name: "2019Floor3.csv", floor: nil) == .init(name: "2019Floor3.csv", floor: 3))
        #expect(try UploadValidation.upload(name: "extra.CSV", floor: "2") == .init(name: "extra.CSV", floor: 2))
        #expect(try UploadValidation.upload(name: nil, floor: "7") == .init(name: "upload-floor7.csv", floor: 7))
        for (name, floor, field) in [
            (nil, nil, "name"), ("../2019Floor1.csv", nil, "name"), ("a/2019Floor1.csv", nil, "name"),
            (".2019Floor1.csv", nil, "name"), ("2019Floor1.txt", nil, "name"), ("data.csv", nil, "name"),
            ("2019Floor8.csv", nil, "name"), ("2019Floor1.csv", "0", "floor"), (nil, "x", "floor"),
        ] as [(String?, String?, String)] {
            let error = #expect(throws: APIError.self) { try UploadValidation.upload(name: name, floor: floor) }
            #expect(error?.field == field, "\(String(describing: name)) \(String(describing: floor))")
        }
    }

    @Test func importIDsAreRunIDs() {
        #expect(ImportSupervisor.isImportID(WorkDir.newRunID()))
        #expect(!ImportSupervisor.isImportID("../x"))
        #expect(!ImportSupervisor.isImportID(""))
        #expect(!ImportSupervisor.isImportID("a.json"))
        #expect(!ImportSupervisor.isImportID(String(repeating: "a", count: 65)))
    }
}
