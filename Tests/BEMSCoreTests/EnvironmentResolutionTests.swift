import Foundation
import Testing

@testable import BEMSCore

@Suite struct EnvironmentResolutionTests {
    @Test func dotenvFilesParse() throws {
        let text = """
            # secrets for staging
            BEMS_STAGING_DATABASE_URL=postgresql://importer:s3cret@db.example.com:5432/bems
            export SENTRY_DSN = "https://key@sentry.example.com/1"  
            QUOTED='a # not a comment'
            ESCAPED="line\\nnext \\"q\\""
            PLAIN=value # trailing comment
            EMPTY=

            """
        let vars = try EnvironmentFile.parse(text, path: ".env.staging")
        #expect(vars["BEMS_STAGING_DATABASE_URL"] == "postgresql://importer:s3cret@db.example.com:5432/bems")
        #expect(vars["SENTRY_DSN"] == "https://key@sentry.example.com/1")
        #expect(vars["QUOTED"] == "a # not a comment")
        #expect(vars["ESCAPED"] == "line\nnext \"q\"")
        #expect(vars["PLAIN"] == "value")
        #expect(vars["EMPTY"] == "")
        #expect(vars.count == 6)
        #expect(try EnvironmentFile.parse("A=1\r\nB=2\r\n", path: "x") == ["A": "1", "B": "2"])
    }

    @Test func aBadDotenvLineNamesTheLineButNotTheValue() {
        #expect(throws: PipelineError.usage(".env.prod:2: expected KEY=value")) {
            try EnvironmentFile.parse("A=1\npostgresql://u:hunter2@h/db\n", path: ".env.prod")
        }
        #expect(throws: PipelineError.usage(".env.prod:1: invalid variable name")) {
            try EnvironmentFile.parse("1A=x", path: ".env.prod")
        }
        #expect(throws: PipelineError.usage(".env.prod:1: invalid variable name")) {
            try EnvironmentFile.parse("A B=x", path: ".env.prod")
        }
    }

    @Test func theProcessEnvironmentWinsOverTheFile() throws {
        let dir = TemporaryDirectory()
        dir.write(".env.staging", "BEMS_STAGING_DATABASE_URL=postgresql://from-file/db\nONLY_IN_FILE=1\n")
        let merged = try EnvironmentFile.merged(
            env: "staging", directory: dir.path, process: ["BEMS_STAGING_DATABASE_URL": "postgresql://from-env/db"])
        #expect(merged["BEMS_STAGING_DATABASE_URL"] == "postgresql://from-env/db")
        #expect(merged["ONLY_IN_FILE"] == "1")
        #expect(try EnvironmentFile.merged(env: "prod", directory: dir.path, process: ["X": "1"]) == ["X": "1"])
    }

    @Test func stagingAndProdNeverFallBackToTheEmbeddedDatabase() {
        for env in ["staging", "prod"] {
            #expect {
                try DatabaseTarget.resolve(config: PipelineConfig(), env: env, environment: [:])
            } throws: { error in
                let e = error as! PipelineError
                return e.exitStatus == .usage && e.message.contains("BEMS_\(env.uppercased())_DATABASE_URL is not set")
                    && e.message.contains("never falls back")
            }
        }
        #expect(throws: PipelineError.usage("unknown environment \"qa\"")) {
            try DatabaseTarget.resolve(config: PipelineConfig(), env: "qa", environment: [:])
        }
    }

    @Test func stagingAndProdRequireTLSUnlessTheURLChooses() throws {
        func resolved(_ env: String, _ url: String, _ extra: [String: String] = [:]) throws -> String {
            try DatabaseTarget.resolve(
                config: PipelineConfig(), env: env,
                environment: ["BEMS_\(env.uppercased())_DATABASE_URL": url].merging(extra) { a, _ in a }
            ).conninfo
        }
        #expect(try resolved("prod", "postgresql://u:p@db.example.com:5432/bems") == "postgresql://u:p@db.example.com:5432/bems?sslmode=require")
        #expect(try resolved("staging", "postgresql://u@h/db?application_name=x") == "postgresql://u@h/db?application_name=x&sslmode=require")
        #expect(try resolved("prod", "host=db.example.com dbname=bems") == "host=db.example.com dbname=bems sslmode=require")
        #expect(try resolved("prod", "postgresql://h/db?sslmode=verify-full") == "postgresql://h/db?sslmode=verify-full")
        #expect(try resolved("prod", "postgresql://h/db", ["PGSSLMODE": "disable"]) == "postgresql://h/db")
        // dev keeps libpq's default.
        #expect(try resolved("dev", "postgresql://h/db") == "postgresql://h/db")
        let options = try #require(ConnectionString.options("postgresql://u:p@h:5433/db?sslmode=require"))
        #expect(options["port"] == "5433")
        #expect(options["sslmode"] == "require")
        #expect(options["password"] == "p")
    }

    @Test func aTransactionPoolerPortIsRefused() {
        for url in [
            "postgresql://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres",
            "host=pooler.example.com port=6543 dbname=postgres",
        ] {
            #expect {
                try DatabaseTarget.resolve(
                    config: PipelineConfig(), env: "prod", environment: ["BEMS_PROD_DATABASE_URL": url])
            } throws: { error in
                let e = error as! PipelineError
                return e.exitStatus == .usage && e.message.contains("6543") && e.message.contains("port 5432")
                    && !e.message.contains("pw")
            }
        }
        #expect(throws: PipelineError.self) {
            try DatabaseTarget.resolve(
                config: PipelineConfig(), env: "prod", environment: ["BEMS_PROD_DATABASE_URL": "host=h", "PGPORT": "6543"])
        }
    }

    @Test func anUnparseableURLIsRefusedWithoutShowingIt() {
        #expect {
            try DatabaseTarget.resolve(
                config: PipelineConfig(), env: "prod",
                environment: ["BEMS_PROD_DATABASE_URL": "host=h password=hunter2 bogus_option=1"])
        } throws: { error in
            let e = error as! PipelineError
            return e.exitStatus == .usage && !e.message.contains("hunter2") && e.message.contains("BEMS_PROD_DATABASE_URL")
        }
        #expect(ConnectionString.adding("sslmode", "require", to: "") == "sslmode=require")
        #expect(ConnectionString.adding("a", "b", to: "postgresql://h/db#frag") == "postgresql://h/db?a=b#frag")
    }
}
