import Foundation
import Testing

@testable import BEMSCore

/// The built executables, run as a user would: exit codes and stdout. Kept few; logic is tested through BEMSCore.
@Suite struct CommandLineTests {
    static let bin = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug").path

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func run(_ tool: String, _ arguments: [String], in directory: String) throws -> Outcome {
        try Self.run(tool, arguments, in: directory)
    }

    /// Runs a built tool in `directory`; `environment` adds variables to this process's, and a `nil` value removes
    /// one.
    static func run(
        _ tool: String, _ arguments: [String], in directory: String, environment: [String: String?] = [:]
    ) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin + "/" + tool)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        if !environment.isEmpty {
            var env = ProcessInfo.processInfo.environment
            for (key, value) in environment { env[key] = value }
            process.environment = env
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func sampleValidateNormalizeInspectEndToEnd() throws {
        let dir = TemporaryDirectory()
        let sample = try run(
            "bems", ["sample", "--out", "in", "--days", "1", "--floors", "4", "--seed", "3"], in: dir.path)
        #expect(sample.status == 0)
        let validate = try run("bems-validate", ["--work-dir", "w", "in"], in: dir.path)
        #expect(validate.status == 0, "\(validate.stderr)")
        #expect(validate.stderr.contains("PASSED"))
        let normalize = try run("bems-normalize", ["--work-dir", "w", "--sample", "1", "in"], in: dir.path)
        #expect(normalize.status == 0, "\(normalize.stderr)")
        let again = try run("bems-normalize", ["--work-dir", "w", "--sample", "1", "in"], in: dir.path)
        #expect(again.stderr.contains("up to date"))
        let work = WorkDir(root: dir.path + "/w")
        let manifest = try #require(try work.currentManifest(.normalize))
        let chunk = try #require(manifest.chunks.first)
        let inspect = try run(
            "bems", ["inspect", work.runDirectory(.normalize, manifest.runID) + "/" + chunk.file], in: dir.path)
        #expect(inspect.status == 0)
        let lines = inspect.stdout.split(separator: "\n")
        #expect(lines.first == "timestamp,sensor_id,floor_number,equipment_type,reading_value,unit,status")
        #expect(lines.count == chunk.rows + 1)
        let text = try String(contentsOfFile: dir.path + "/in/2019Floor4.csv", encoding: .utf8)
        #expect(lines.count - 1 == IndependentCSV.readings(text, floor: 4).count)
        let status = try run("bems", ["status", "--work-dir", "w", "--sample", "1", "--json"], in: dir.path)
        #expect(status.status == 0)
        #expect(status.stdout.contains("\"stage\" : \"normalize\""))
        #expect(status.stdout.contains(manifest.runID))
    }

    @Test func documentedExitCodes() throws {
        let dir = TemporaryDirectory()
        dir.write("bad.json", "{\"chunk\": {\"days\": \"one\"}}")
        let badConfig = try run("bems-validate", ["--config", "bad.json"], in: dir.path)
        #expect(badConfig.status == 64)
        #expect(badConfig.stderr.contains("bad.json: chunk.days: expected a number"))
        let missing = try run("bems-validate", ["--work-dir", "w", "nothing-here"], in: dir.path)
        #expect(missing.status == 66)
        dir.write("in/2019Floor1.csv", CSV.file(floor: 1, minutes: 3) { _, _ in "x" })
        let invalid = try run("bems-validate", ["--work-dir", "w", "in"], in: dir.path)
        #expect(invalid.status == 65)
        #expect(invalid.stderr.contains("2019Floor1.csv:2:21: error: expected a decimal number"))
        let notValidated = try run("bems-normalize", ["--work-dir", "w2", "in"], in: dir.path)
        #expect(notValidated.status == 66)
        dir.write("x.bemc", [UInt8](repeating: 7, count: 100))
        let corrupt = try run("bems", ["inspect", "x.bemc"], in: dir.path)
        #expect(corrupt.status == 74)
        #expect(corrupt.stderr.contains("x.bemc"))
        let noChunk = try run("bems", ["inspect", "nope.bemc"], in: dir.path)
        #expect(noChunk.status == 66)
        let usage = try run("bems-validate", ["--no-such-flag"], in: dir.path)
        #expect(usage.status == 64)
    }
}
