/// An error reported by libzstd, or by the wrapper's own size checks.
///
/// Carries the raw `size_t` error code returned by libzstd (`0` for errors raised by the wrapper itself) and the
/// text of `ZSTD_getErrorName`, copied into a `String` before the error is thrown.
package struct ZstdError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The raw libzstd result that signalled the error, or `0` when the wrapper raised it.
    package var code: Int
    /// `ZSTD_getErrorName(code)` or a wrapper message.
    package var message: String

    /// Creates an error from a code and a message.
    package init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    /// `zstd error <code>: <message>`.
    package var description: String {
        "zstd error \(code): \(message)"
    }
}
