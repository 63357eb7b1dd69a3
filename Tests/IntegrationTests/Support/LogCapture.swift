import Foundation
import Logging

/// Collects the messages logged through its ``logger`` so a test can check what a stage reported (retries, splits).
final class LogCapture: @unchecked Sendable {
    // @unchecked: `entries` is read and written under `lock`.
    private let lock = NSLock()
    private var entries: [(level: Logger.Level, message: String, metadata: Logger.Metadata)] = []

    /// A logger writing into this capture, at `level` and above.
    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "test.capture") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// The metadata of every entry whose message is `message`.
    func entries(_ message: String) -> [Logger.Metadata] {
        lock.withLock { entries.filter { $0.message == message }.map(\.metadata) }
    }

    /// Every message logged at `level` or above, as `message key=value …` lines (for failure output).
    func lines(atLeast level: Logger.Level = .warning) -> [String] {
        lock.withLock {
            entries.filter { $0.level >= level }.map { entry in
                entry.message + " "
                    + entry.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    .joined(separator: " ")
            }
        }
    }

    fileprivate func append(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        lock.withLock { entries.append((level, message, metadata)) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.append(
                event.level, "\(event.message)", metadata.merging(event.metadata ?? [:]) { _, new in new })
        }
    }
}
