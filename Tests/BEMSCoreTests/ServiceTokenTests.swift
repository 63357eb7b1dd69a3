import BEMSServer
import Foundation
import Testing

@testable import BEMSCore

@Suite struct ServiceTokenTests {
    let dev = "dev-token-0123456789abcdef"
    let staging = "staging-token-0123456789abcdef"

    var tokens: ServiceTokens {
        var config = PipelineConfig()
        config.environments["staging"]!.serviceTokenEnv = "STAGING_ADMIN"
        let variables = ["BEMS_DEV_SERVICE_TOKEN": dev, "STAGING_ADMIN": staging, "BEMS_PROD_SERVICE_TOKEN": ""]
        return ServiceTokens(config: config, variables: ["dev": variables, "staging": variables, "prod": variables])
    }

    @Test func aTokenIsAllowedForItsEnvironmentOnly() {
        let t = tokens
        #expect(t.environments == ["dev", "staging"])
        #expect(t.check(authorization: "Bearer \(dev)", env: "dev") == .allowed)
        #expect(t.check(authorization: "bearer  \(dev) ", env: "dev") == .allowed)
        #expect(t.check(authorization: "Bearer \(staging)", env: "staging") == .allowed)
        #expect(t.check(authorization: "Bearer \(staging)", env: "dev") == .otherEnvironment("staging"))
        #expect(t.check(authorization: "Bearer \(dev)", env: "prod") == .otherEnvironment("dev"))
        #expect(t.identify(authorization: "Bearer \(dev)") == .environment("dev"))
    }

    @Test(arguments: [nil, "", "Bearer", "Bearer ", "Basic abc", "Token x"])
    func aMissingTokenIsMissing(header: String?) {
        #expect(tokens.check(authorization: header, env: "dev") == .missing)
    }

    @Test func aWrongTokenIsInvalidEvenWhenCloseToARightOne() {
        let t = tokens
        for wrong in [dev + "x", String(dev.dropLast()), dev.uppercased(), "x" + dev, staging + dev, " "] {
            let verdict = t.check(authorization: "Bearer \(wrong)", env: "dev")
            #expect(verdict == (wrong == " " ? .missing : .invalid), "\(wrong)")
        }
        // prod's variable is empty: no token matches it, not even an empty one.
        #expect(t.check(authorization: "Bearer  ", env: "prod") == .missing)
    }

    @Test func bearerTokenParsing() {
        #expect(ServiceTokens.bearerToken("Bearer abc") == "abc")
        #expect(ServiceTokens.bearerToken("BEARER abc") == "abc")
        #expect(ServiceTokens.bearerToken("Bearerabc") == nil)
        #expect(ServiceTokens.bearerToken(nil) == nil)
    }

    @Test func constantTimeEqualityComparesWholeStrings() {
        #expect(ServiceTokens.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!ServiceTokens.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!ServiceTokens.constantTimeEqual([9, 2, 3], [1, 2, 3]))
        #expect(!ServiceTokens.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(ServiceTokens.constantTimeEqual([], []))
    }

    @Test func theServerNeedsALongEnoughTokenForItsEnvironment() throws {
        let config = PipelineConfig()
        let unset = try #require(ServiceTokens.problem(config: config, env: "dev", variables: [:]))
        #expect(unset.contains("BEMS_DEV_SERVICE_TOKEN is not set"))
        #expect(unset.contains(".env.dev"))
        let short = try #require(
            ServiceTokens.problem(config: config, env: "dev", variables: ["BEMS_DEV_SERVICE_TOKEN": "short"]))
        #expect(short.contains("shorter than 16"))
        #expect(!short.contains("short\""))
        #expect(ServiceTokens.problem(config: config, env: "dev", variables: ["BEMS_DEV_SERVICE_TOKEN": dev]) == nil)
        #expect(ServiceTokens.problem(config: config, env: "qa", variables: [:])?.contains("unknown") == true)
    }
}
