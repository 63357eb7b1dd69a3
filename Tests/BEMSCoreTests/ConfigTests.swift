import Foundation
import Testing

@testable import BEMSCore

@Suite struct ConfigTests {
    func parse(_ json: String) throws -> PipelineConfig {
        try PipelineConfig.parse(Data(json.utf8), file: "p.json")
    }

    @Test func theShippedPipelineJSONIsValidAndMatchesTheDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try PipelineConfig.load(path: root.appendingPathComponent("pipeline.json").path)
        #expect(config.ranges == PipelineConfig.defaultRanges)
        #expect(config.environments == PipelineConfig.defaultEnvironments)
        #expect(config.timeZone == "Asia/Bangkok")
        #expect(config.rejectThreshold == 0.001)
        #expect(config.load == PipelineConfig.Loading())
    }

    @Test func readsEveryKey() throws {
        let c = try parse(
            """
            {"sources": ["a", {"path": "b.csv", "floor": 3}], "workDir": "w", "timeZone": "UTC",
             "chunk": {"days": 2, "maxRows": 2000, "zstdLevel": 5}, "rejectThreshold": 0.01, "maxLineBytes": 4096,
             "ranges": {"light": {"valid": ["0", "5000.5"], "plausible": [0, 60.25]}},
             "environments": {"prod": {"databaseURLEnv": "X_URL", "sample": 1}}}
            """)
        #expect(c.sources == [.init(path: "a", floor: nil), .init(path: "b.csv", floor: 3)])
        #expect(c.workDir == "w")
        #expect(c.timeZone == "UTC")
        #expect(c.chunk == .init(days: 2, maxRows: 2000, zstdLevel: 5))
        #expect(c.rejectThreshold == 0.01)
        #expect(c.maxLineBytes == 4096)
        #expect(c.ranges[.light]!.valid == 0...50_005_000)
        #expect(c.ranges[.light]!.plausible == 0...602_500)
        #expect(c.environments["prod"]!.databaseURLEnv == "X_URL")
        #expect(c.environments["dev"]!.sample == 0.1)
    }

    @Test(arguments: [
        ("[1]", "top level: expected an object"),
        ("{\"sorces\": []}", "sorces: unknown key"),
        ("{\"workDir\": 3}", "workDir: expected a non-empty string"),
        ("{\"chunk\": {\"days\": 0}}", "chunk.days: expected an integer from 1 to 366"),
        ("{\"chunk\": {\"days\": 1.5}}", "chunk.days: expected an integer"),
        ("{\"chunk\": {\"days\": true}}", "chunk.days: expected a number"),
        ("{\"rejectThreshold\": \"x\"}", "rejectThreshold: expected a number"),
        ("{\"rejectThreshold\": 2}", "rejectThreshold: expected a number from 0 to 1"),
        ("{\"timeZone\": \"Mars/Base\"}", "timeZone: unknown time zone"),
        ("{\"ranges\": {\"fan\": {}}}", "ranges.fan: unknown key"),
        ("{\"ranges\": {\"ac\": {\"valid\": [5, 1]}}}", "ranges.ac.valid: min is greater than max"),
        ("{\"ranges\": {\"ac\": {\"valid\": [0, \"1.00001\"]}}}", "ranges.ac.valid[1]: expected a decimal"),
        ("{\"ranges\": {\"ac\": {\"valid\": [0]}}}", "ranges.ac.valid: expected [min, max]"),
        ("{\"sources\": [{\"floor\": 2}]}", "sources[0].path: missing"),
        ("{\"sources\": [{\"path\": \"x\", \"floor\": 0}]}", "sources[0].floor: expected an integer from 1 to 99"),
        ("{\"environments\": {\"qa\": {}}}", "environments.qa: unknown key"),
        ("{\"environments\": {\"dev\": {\"sample\": 1.5}}}", "environments.dev.sample: expected a number from 0 to 1"),
        ("{", "not valid JSON"),
    ])
    func errorsNameTheKeyAndExit64(json: String, fragment: String) {
        let error = #expect(throws: PipelineError.self) { try parse(json) }
        #expect(error?.exitStatus == .usage)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")")
        #expect(error?.message.hasPrefix("p.json: ") == true)
    }

    @Test func loadAndStatementTimeoutSettingsAreRead() throws {
        let c = try parse(
            """
            {"load": {"minPieceRows": 2500, "indexBuildWorkers": 3},
             "environments": {"dev": {"statementTimeout": "30s"}, "staging": {"statementTimeout": 1500},
                              "prod": {"statementTimeout": "2min"}}}
            """)
        #expect(c.load.minPieceRows == 2500)
        #expect(c.load.indexBuildWorkers == 3)
        #expect(c.environments["dev"]?.statementTimeoutMilliseconds == 30_000)
        #expect(c.environments["staging"]?.statementTimeoutMilliseconds == 1500)
        #expect(c.environments["prod"]?.statementTimeoutMilliseconds == 120_000)
        let defaults = try parse("{}")
        #expect(defaults.load.minPieceRows == 10_000)
        #expect(defaults.load.indexBuildWorkers == 1)
        #expect(defaults.environments.values.allSatisfy { $0.statementTimeoutMilliseconds == nil })
        let ms = try parse(#"{"environments": {"dev": {"statementTimeout": "250ms"}}}"#)
        #expect(ms.environments["dev"]?.statementTimeoutMilliseconds == 250)
        let none = try parse(#"{"environments": {"dev": {"statementTimeout": 0}}}"#)
        #expect(none.environments["dev"]?.statementTimeoutMilliseconds == 0)
    }

    @Test func theStatementTimeoutReachesTheDatabaseTarget() throws {
        let c = try parse(
            #"{"environments": {"dev": {"statementTimeout": "5s", "lockTimeout": "2s", "idleInTransactionTimeout": "10min", "rateLimit": {"connectionsPerSecond": 5}}}}"#
        )
        let target = try DatabaseTarget.resolve(
            config: c, env: "dev", environment: ["BEMS_DEV_DATABASE_URL": "host=/tmp dbname=x"])
        #expect(target.statementTimeoutMilliseconds == 5000)
        #expect(target.lockTimeoutMilliseconds == 2000)
        #expect(target.idleInTransactionTimeoutMilliseconds == 600_000)
        #expect(target.connectLimiter?.rate == 5)
        #expect(target.applicationName == nil)
    }

    @Test func poolAndRateLimitKeys() throws {
        let c = try parse(
            #"{"environments": {"prod": {"workers": 8, "maxConnections": 40, "rateLimit": {"rowsPerSecond": 50000, "bytesPerSecond": 4e6}}}}"#
        )
        let prod = try #require(c.environments["prod"])
        #expect(prod.workers == 8)
        #expect(prod.maxConnections == 40)
        #expect(prod.rateLimit.rowsPerSecond == 50_000)
        #expect(prod.rateLimit.bytesPerSecond == 4_000_000)
        #expect(prod.rateLimit.connectionsPerSecond == nil)
        let defaults = try parse("{}")
        #expect(defaults.environments.values.allSatisfy { $0.maxConnections == 100 && $0.workers == nil })
        for (json, message) in [
            (#"{"environments": {"dev": {"workers": 0}}}"#, "environments.dev.workers: expected an integer from 1 to 64"),
            (#"{"environments": {"dev": {"maxConnections": 1}}}"#, "environments.dev.maxConnections: expected an integer from 2 to 10000"),
            (#"{"environments": {"dev": {"rateLimit": {"rowsPerSecond": 0}}}}"#, "environments.dev.rateLimit.rowsPerSecond: expected a number above 0"),
            (#"{"environments": {"dev": {"rateLimit": {"rows": 5}}}}"#, "environments.dev.rateLimit.rows: unknown key"),
            (#"{"environments": {"dev": {"lockTimeout": "soon"}}}"#, "environments.dev.lockTimeout: expected milliseconds"),
        ] {
            #expect {
                try parse(json)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    @Test(arguments: [
        (#"{"load": {"minPieceRows": 0}}"#, "load.minPieceRows: expected an integer from 1 to 50000000"),
        (#"{"load": {"minPieceRows": "10"}}"#, "load.minPieceRows: expected a number"),
        (#"{"load": {"indexBuildWorkers": 65}}"#, "load.indexBuildWorkers: expected an integer from 0 to 64"),
        (#"{"load": {"minRows": 10}}"#, "load.minRows: unknown key"),
        (#"{"load": 5}"#, "load: expected an object"),
        (#"{"environments": {"dev": {"statementTimeout": "30"}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": "30 s"}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": "-5s"}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": "1h"}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": "1441min"}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": "9999999999ms"}}}"#, "environments.dev.statementTimeout"),
        (#"{"environments": {"dev": {"statementTimeout": 1.5}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": -1}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": true}}}"#, "environments.dev.statementTimeout: expected"),
        (#"{"environments": {"dev": {"statementTimeout": 86400001}}}"#, "environments.dev.statementTimeout"),
        (#"{"environments": {"dev": {"statementTimeoutMs": 5}}}"#, "environments.dev.statementTimeoutMs: unknown"),
    ])
    func loadAndTimeoutErrorsNameTheKey(json: String, fragment: String) {
        let error = #expect(throws: PipelineError.self) { try parse(json) }
        #expect(error?.exitStatus == .usage)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")")
    }

    @Test func missingFileIsExit66() {
        let error = #expect(throws: PipelineError.self) { try PipelineConfig.load(path: "/nonexistent/p.json") }
        #expect(error?.exitStatus == .noInput)
    }
}
