import Foundation
import Logging

/// A log handler that passes messages on to another handler and notes, from every stage's log, what the run report
/// needs beyond the manifest: the seconds of each chunk (a message with `chunk` and `seconds` metadata, such as
/// load's `chunk loaded`) and each retried transient database error (``RetryPolicy``'s `transient database error,
/// retrying`).
///
/// It sees messages down to `info` whatever the log level, and forwards only those at or above the inner handler's
/// level, so the output on stderr is unchanged. The stages need no change to be observed.
package struct RunLogRecorder: LogHandler {
    /// Where the observations collect (shared by every copy of the handler).
    package final class Sink: @unchecked Sendable {
        // @unchecked: every field is read and written under `lock`.
        private let lock = NSLock()
        private var _observations = RunObservations()

        package init() {}

        package var observations: RunObservations { lock.withLock { _observations } }

        func note(chunkSeconds: Double) { lock.withLock { _observations.chunkSeconds.append(chunkSeconds) } }
        func noteRetry() { lock.withLock { _observations.retries += 1 } }
    }

    package var inner: any LogHandler
    package let sink: Sink

    package init(inner: any LogHandler, sink: Sink) {
        self.inner = inner
        self.sink = sink
    }

    /// The message ``RetryPolicy`` logs before each retry.
    package static let retryMessage = "transient database error, retrying"

    package var logLevel: Logger.Level {
        get { min(inner.logLevel, .info) }
        set { inner.logLevel = newValue }
    }

    package var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    package var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    package func log(event: LogEvent) {
        let message = event.message.description
        if message == Self.retryMessage {
            sink.noteRetry()
        } else if let metadata = event.metadata, metadata["chunk"] != nil,
            case .string(let text)? = metadata["seconds"], let seconds = Double(text)
        {
            sink.note(chunkSeconds: seconds)
        }
        if event.level >= inner.logLevel { inner.log(event: event) }
    }
}

extension Logger {
    /// This logger with its handler wrapped in a ``RunLogRecorder`` that reports to `sink`.
    package func recording(into sink: RunLogRecorder.Sink) -> Logger {
        var copy = self
        copy.handler = RunLogRecorder(inner: handler, sink: sink)
        return copy
    }
}
