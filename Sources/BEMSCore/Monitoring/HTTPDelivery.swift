import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Best-effort HTTP delivery for monitoring (Sentry, webhook, Pushgateway): one request with a short timeout; the
/// outcome is returned, never thrown, so a delivery problem never fails an import.
package enum HTTPDelivery {
    /// What happened to one request.
    package enum Outcome: Equatable, Sendable {
        /// The server answered with this status (2xx is success).
        case status(Int)
        /// No answer: timeout, refused, bad URL. The text is the error's description without the URL.
        case failed(String)

        package var succeeded: Bool {
            if case .status(let code) = self { return (200..<300).contains(code) }
            return false
        }
    }

    /// Sends one request.
    ///
    /// - Parameters:
    ///   - url: The target; it may hold a token, so it never appears in the outcome.
    ///   - method: `POST` or `PUT`.
    ///   - timeout: Seconds for the whole request.
    package static func send(
        _ url: URL, method: String = "POST", headers: [String: String] = [:], body: Data, timeout: Double
    ) async -> Outcome {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        request.httpBody = body
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        do {
            let (_, response) = try await session.data(for: request)
            return .status((response as? HTTPURLResponse)?.statusCode ?? 0)
        } catch let error as URLError {
            return .failed("URLError \(error.code.rawValue)")
        } catch {
            return .failed(SecretScrubber.scrub("\(error)", secrets: [url.absoluteString]))
        }
    }
}
