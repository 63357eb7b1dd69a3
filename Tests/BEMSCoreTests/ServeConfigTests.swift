import Foundation
import Testing

@testable import BEMSCore

@Suite struct ServeConfigTests {
    func parse(_ json: String) throws -> PipelineConfig {
        try PipelineConfig.parse(Data(json.utf8), file: "p.json")
    }

    @Test func defaultsBindLoopbackOnPort8787WithA64MiBBodyLimit() {
        let c = PipelineConfig()
        #expect(c.serve.host == "127.0.0.1")
        #expect(c.serve.port == 8787)
        #expect(c.serve.maxBodyBytes == 64 << 20)
        #expect(c.serve.requestsPerSecond == 10 && c.serve.requestBurst == 60 && c.serve.idleTimeoutSeconds == 60)
        #expect(c.environments["dev"]!.serviceTokenVariable(env: "dev") == "BEMS_DEV_SERVICE_TOKEN")
        #expect(c.environments["prod"]!.serviceTokenVariable(env: "prod") == "BEMS_PROD_SERVICE_TOKEN")
        // Without a name, the variable follows the environment's name.
        var e = c.environments["staging"]!
        e.serviceTokenEnv = nil
        #expect(e.serviceTokenVariable(env: "staging") == "BEMS_STAGING_SERVICE_TOKEN")
    }

    @Test func theShippedPipelineJSONHasTheServeDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try PipelineConfig.load(path: root.appendingPathComponent("pipeline.json").path)
        #expect(config.serve == PipelineConfig.Serve())
        #expect(config.environments == PipelineConfig.defaultEnvironments)
    }

    @Test func readsTheServeSectionAndTokenVariables() throws {
        let c = try parse(
            """
            {"serve": {"host": "0.0.0.0", "port": 0, "maxBodyBytes": 1024, "requestsPerSecond": 0.5, "requestBurst": 3,
                       "idleTimeoutSeconds": 2.5},
             "environments": {"staging": {"serviceTokenEnv": "STAGING_ADMIN_TOKEN"}}}
            """)
        #expect(c.serve.host == "0.0.0.0")
        #expect(c.serve.port == 0)
        #expect(c.serve.maxBodyBytes == 1024)
        #expect(c.serve.requestsPerSecond == 0.5 && c.serve.requestBurst == 3 && c.serve.idleTimeoutSeconds == 2.5)
        #expect(c.environments["staging"]!.serviceTokenVariable(env: "staging") == "STAGING_ADMIN_TOKEN")
        #expect(c.environments["dev"]!.serviceTokenVariable(env: "dev") == "BEMS_DEV_SERVICE_TOKEN")
    }

    @Test(arguments: [
        (#"{"serve": {"hostname": "x"}}"#, "serve.hostname: unknown key"),
        (#"{"serve": []}"#, "serve: expected an object"),
        (#"{"serve": {"host": ""}}"#, "serve.host: expected a non-empty string"),
        (#"{"serve": {"port": 65536}}"#, "serve.port: expected an integer from 0 to 65535"),
        (#"{"serve": {"port": "8787"}}"#, "serve.port: expected a number"),
        (#"{"serve": {"maxBodyBytes": 100}}"#, "serve.maxBodyBytes: expected an integer from 1024"),
        (#"{"serve": {"requestsPerSecond": 0}}"#, "serve.requestsPerSecond: expected a number above 0"),
        (#"{"serve": {"requestsPerSecond": true}}"#, "serve.requestsPerSecond: expected a number"),
        (#"{"serve": {"requestBurst": 0}}"#, "serve.requestBurst: expected an integer from 1"),
        (#"{"serve": {"idleTimeoutSeconds": 0}}"#, "serve.idleTimeoutSeconds: expected a number of seconds from 0.1"),
        (#"{"environments": {"dev": {"serviceTokenEnv": "BAD-NAME"}}}"#, "environments.dev.serviceTokenEnv"),
        (#"{"environments": {"dev": {"serviceToken": "x"}}}"#, "environments.dev.serviceToken: unknown key"),
    ])
    func refusesBadKeysNamingThePath(json: String, expected: String) throws {
        let e = #expect(throws: PipelineError.self) { try parse(json) }
        #expect(e?.exitStatus == .usage)
        #expect(e?.message.contains(expected) == true, "\(e?.message ?? "")")
    }
}
