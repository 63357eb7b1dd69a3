import BEMSServer
import Foundation
import Logging
import Testing

@testable import BEMSCore

/// `/healthz` and the import pre-flight: a database that cannot be reached reads `down`, with a reason that names
/// the variable and never the host, socket or password (unit: unreachable addresses, no server needed).
@Suite struct DatabaseProbeTests {
    @Test func anUnreachableDatabaseIsDownWithoutConnectionDetails() {
        let dir = TemporaryDirectory()
        var config = PipelineConfig()
        config.workDir = dir.path + "/work"
        let secret = "pr0be-secret"
        let url = "postgresql://bems:\(secret)@/postgres?host=\(dir.path)/nosocket&port=5999"
        let down = DatabaseProbe.check(
            config: config, env: "dev", variables: ["BEMS_DEV_DATABASE_URL": url], startEmbedded: false)
        #expect(down == .down("BEMS_DEV_DATABASE_URL: cannot connect"))
        #expect(!down.isUp)
        // Transaction pooler port: not usable.
        let pooler = DatabaseProbe.check(
            config: config, env: "staging",
            variables: ["BEMS_STAGING_DATABASE_URL": "postgresql://u:\(secret)@db.example.invalid:6543/postgres"],
            startEmbedded: false)
        #expect(pooler == .down("BEMS_STAGING_DATABASE_URL is not a usable connection string"))
        // staging and prod never fall back to the embedded database.
        #expect(
            DatabaseProbe.check(config: config, env: "prod", variables: [:], startEmbedded: true)
                == .down("BEMS_PROD_DATABASE_URL is not set"))
        #expect(DatabaseProbe.check(config: config, env: "qa", variables: [:], startEmbedded: false).database == "down")
        // dev without a URL looks at the embedded server without starting it.
        let embedded = DatabaseProbe.check(config: config, env: "dev", variables: [:], startEmbedded: false)
        #expect(embedded == .down("the embedded dev PostgreSQL: cannot connect"))
        #expect(!FileManager.default.fileExists(atPath: config.workDir + "/pg"))
        for result in [down, pooler, embedded] {
            #expect(!(result.reason ?? "").contains(secret))
            #expect(!(result.reason ?? "").contains(dir.path))
        }
    }

    @Test func validatingMissingConfiguredInputsIs422() async throws {
        let dir = TemporaryDirectory()
        var config = PipelineConfig()
        config.sources = [.init(path: dir.path + "/missing")]
        let folder = try UploadValidation.makeFolder()
        defer { UploadValidation.remove(folder) }
        var logger = Logger(label: "test.validate")
        logger.logLevel = .critical
        let error = await #expect(throws: APIError.self) {
            try await UploadValidation.run(config: config, env: "dev", upload: nil, folder: folder, logger: logger)
        }
        #expect(error?.status == 422)
        #expect(error?.message.contains("no such file or folder") == true, "\(error?.message ?? "")")
    }
}
