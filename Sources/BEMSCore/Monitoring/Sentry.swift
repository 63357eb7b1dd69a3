import Foundation

/// A Sentry DSN, `https://PUBLIC_KEY@HOST[:PORT][/PATH]/PROJECT_ID` (a legacy `KEY:SECRET@` is accepted too).
package struct SentryDSN: Equatable, Sendable {
    package var publicKey: String
    package var secretKey: String?
    package var projectID: String
    /// `scheme://host[:port][/path]`, the part before `/api/`.
    package var base: String

    /// Parses a DSN; `nil` when it is not one.
    package init?(_ dsn: String) {
        guard let c = URLComponents(string: dsn.trimmingCharacters(in: .whitespaces)),
            let scheme = c.scheme?.lowercased(), ["http", "https"].contains(scheme), let host = c.host, !host.isEmpty,
            let user = c.user, !user.isEmpty
        else { return nil }
        var parts = c.path.split(separator: "/").map(String.init)
        guard let project = parts.popLast(), !project.isEmpty else { return nil }
        publicKey = user
        secretKey = c.password
        projectID = project
        let prefix = parts.isEmpty ? "" : "/" + parts.joined(separator: "/")
        base = "\(scheme)://\(host)\(c.port.map { ":\($0)" } ?? "")\(prefix)"
    }

    /// The envelope endpoint, `…/api/<project>/envelope/`.
    package var envelopeURL: URL { URL(string: "\(base)/api/\(projectID)/envelope/")! }
    /// The older store endpoint, `…/api/<project>/store/`.
    package var storeURL: URL { URL(string: "\(base)/api/\(projectID)/store/")! }

    /// The `X-Sentry-Auth` header value.
    package var authHeader: String {
        var h = "Sentry sentry_version=7, sentry_client=bems/\(BEMS.version), sentry_key=\(publicKey)"
        if let secretKey { h += ", sentry_secret=\(secretKey)" }
        return h
    }
}

/// The Sentry event of a failed run: tags for stage, env, run id and error code, a fingerprint by operation type
/// (`parse`, `copy`, `connect`, `verify`, …) so failures of one kind group together, and no secrets or row values:
/// the message goes through ``SecretScrubber`` with `values: true`, and the extra data are counts only.
package struct SentryEvent: Codable, Equatable, Sendable {
    package struct Message: Codable, Equatable, Sendable {
        package var formatted: String
    }
    package struct ExceptionValue: Codable, Equatable, Sendable {
        package var type: String
        package var value: String
    }
    package struct Exceptions: Codable, Equatable, Sendable {
        package var values: [ExceptionValue]
    }

    package var eventID: String
    package var timestamp: String
    package var platform = "other"
    package var level = "error"
    package var logger: String
    package var release = "bems@\(BEMS.version)"
    package var environment: String
    package var message: Message
    package var exception: Exceptions
    package var tags: [String: String]
    package var fingerprint: [String]
    package var extra: [String: Double]

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, platform, level, logger, release, environment, message, exception, tags, fingerprint, extra
    }

    /// The event of `report` (which must carry a ``RunReport/failure``).
    package init(report: RunReport, eventID: String = SentryEvent.newEventID(), secrets: [String] = []) {
        let failure =
            report.failure
            ?? Failure(code: "exit_\(report.exitStatus)", operation: "unexpected", sqlState: nil, message: "")
        let text = SecretScrubber.scrub(
            "bems \(report.stage.rawValue) failed: \(failure.message)", secrets: secrets, values: true)
        self.eventID = eventID
        timestamp = report.finishedAt
        logger = "bems.\(report.stage.rawValue)"
        environment = report.env
        message = Message(formatted: text)
        exception = Exceptions(values: [
            ExceptionValue(type: "\(report.stage.rawValue).\(failure.operation)", value: text)
        ])
        var tags = [
            "stage": report.stage.rawValue, "env": report.env, "run_id": report.runID, "error_code": failure.code,
            "operation": failure.operation, "exit_status": "\(report.exitStatus)",
        ]
        if let s = failure.sqlState { tags["sqlstate"] = s }
        self.tags = tags
        fingerprint = ["bems", report.stage.rawValue, failure.operation]
        extra = [
            "rows_in": Double(report.rowsIn), "rows_out": Double(report.rowsOut),
            "rows_rejected": Double(report.rowsRejected), "seconds": report.seconds, "retries": Double(report.retries),
        ]
    }

    /// 32 lowercase hex digits, as Sentry wants event ids.
    package static func newEventID() -> String {
        UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// The envelope body: a header line, an item header line and the event.
    package func envelope(sentAt: Date = Date()) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload = try encoder.encode(self)
        let header = try encoder.encode(["event_id": eventID, "sent_at": RunReport.timestamp(sentAt)])
        let item = try JSONSerialization.data(
            withJSONObject: ["type": "event", "length": payload.count], options: [.sortedKeys])
        return header + Data("\n".utf8) + item + Data("\n".utf8) + payload + Data("\n".utf8)
    }

    /// Posts the event to the DSN's envelope endpoint (best-effort, within `timeout` seconds).
    package func send(to dsn: SentryDSN, timeout: Double) async -> HTTPDelivery.Outcome {
        guard let body = try? envelope() else { return .failed("cannot encode the event") }
        return await HTTPDelivery.send(
            dsn.envelopeURL,
            headers: ["Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": dsn.authHeader], body: body,
            timeout: timeout)
    }
}
