import Foundation
import Logging

/// A log handler that passes messages on to another handler and notes, from every stage's log, each retried transient
/// database error (``RetryPolicy``'s `transient database error, retrying`) for the run report and the progress line.
/// With a progress line on the terminal, it clears the line before a message is printed (the next tick redraws it).
///
/// It sees messages down to `info` whatever the log level, and forwards only those at or above the inner handler's
/// level, so the output on stderr is unchanged. The stages need no change to be observed.
package struct RunLogRecorder: LogHandler {
    /// Where the observations collect (shared by every copy of the handler).
    package final class Sink: @unchecked Sendable {
        // @unchecked: every field is read and written under `lock`.
        private let lock = NSLock()
        private var _observations = RunObservations()
        /// The run's progress: told about retries, cleared before a message is printed.
        package let progress: StageProgress?

        package init(progress: StageProgress? = nil) { self.progress = progress }

        /// The retries seen, and the chunk timings the progress recorded.
        package var observations: RunObservations {
            var o = lock.withLock { _observations }
            o.chunkSeconds = progress?.chunkSeconds ?? []
            return o
        }

        func noteRetry() {
            lock.withLock { _observations.retries += 1 }
            progress?.noteRetry()
        }
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
        if event.message.description == Self.retryMessage { sink.noteRetry() }
        if event.level >= inner.logLevel {
            sink.progress?.clearLine()
            inner.log(event: event)
        }
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
