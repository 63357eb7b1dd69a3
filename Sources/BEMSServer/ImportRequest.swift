import BEMSCore
import Foundation

/// An error answered to the client: an HTTP status and a message that names the problem (and the field, for a bad
/// body). Messages never hold secrets, connection details or stack traces.
package struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
    package var status: Int
    package var message: String
    /// The request field at fault (`stages[1]`, `sample`, `name`), for 400 answers.
    package var field: String?
    /// Seconds for `Retry-After` (429).
    package var retryAfter: Int?

    package init(_ status: Int, _ message: String, field: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.field = field
        self.retryAfter = retryAfter
    }

    package var description: String { "\(status): \(message)" }

    /// 400 naming a field.
    package static func badField(_ field: String, _ message: String) -> APIError {
        APIError(400, "\(field): \(message)", field: field)
    }
}

/// The body of `POST /admin/import`: `{"env": "dev", "stages": ["validate", …], "sample": 0.1}`, every field
/// optional (defaults: the server's environment, all five stages, the environment's sample).
package struct ImportRequest: Equatable, Sendable {
    package var env: String?
    package var stages: [Stage]?
    package var sample: Double?

    package init(env: String? = nil, stages: [Stage]? = nil, sample: Double? = nil) {
        self.env = env
        self.stages = stages
        self.sample = sample
    }

    /// The accepted keys.
    package static let fields = ["env", "sample", "stages"]

    /// Decodes and checks a body. An empty body (or only whitespace) is `{}`.
    ///
    /// - Throws: ``APIError`` 400 naming the field: not JSON, not an object, an unknown key, a wrong type, an unknown
    ///   environment or stage, a repeated stage, a sample outside 0…1.
    package static func decode(_ body: [UInt8], environments: some Collection<String>) throws(APIError) -> ImportRequest {
        guard body.contains(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }) else {
            return ImportRequest()
        }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw APIError(400, "the body is not valid JSON", field: "body")
        }
        guard let object = root as? [String: Any] else {
            throw APIError(400, "the body must be a JSON object", field: "body")
        }
        for key in object.keys.sorted() where !fields.contains(key) {
            throw APIError.badField(key, "unknown field (expected one of: \(fields.joined(separator: ", ")))")
        }
        var request = ImportRequest()
        if let value = object["env"], !(value is NSNull) {
            guard let env = value as? String else { throw APIError.badField("env", "expected a string") }
            guard environments.contains(env) else {
                throw APIError.badField(
                    "env", "unknown environment \"\(env.prefix(40))\" (expected one of: \(environments.sorted().joined(separator: ", ")))")
            }
            request.env = env
        }
        if let value = object["stages"], !(value is NSNull) {
            guard let list = value as? [Any] else {
                throw APIError.badField("stages", "expected an array of stage names")
            }
            guard !list.isEmpty else { throw APIError.badField("stages", "expected at least one stage") }
            var stages: [Stage] = []
            for (index, item) in list.enumerated() {
                let field = "stages[\(index)]"
                guard let name = item as? String else { throw APIError.badField(field, "expected a string") }
                guard let stage = Stage(rawValue: name) else {
                    throw APIError.badField(
                        field,
                        "unknown stage \"\(name.prefix(40))\" (expected one of: \(Stage.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard !stages.contains(stage) else { throw APIError.badField(field, "\(name) is listed twice") }
                stages.append(stage)
            }
            // Stages always run in pipeline order.
            request.stages = Stage.allCases.filter(stages.contains)
        }
        if let value = object["sample"], !(value is NSNull) {
            guard let number = value as? NSNumber, !isBoolean(number) else {
                throw APIError.badField("sample", "expected a number from 0 to 1")
            }
            let d = number.doubleValue
            guard d.isFinite, d >= 0, d <= 1 else { throw APIError.badField("sample", "expected a number from 0 to 1") }
            request.sample = d
        }
        return request
    }
}

/// JSON booleans arrive as NSNumber too; their Objective-C type code is `c`.
func isBoolean(_ n: NSNumber) -> Bool {
    String(cString: n.objCType) == "c"
}
