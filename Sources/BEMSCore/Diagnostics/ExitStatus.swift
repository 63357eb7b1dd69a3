/// The documented exit codes of every bems command (sysexits, as swift-argument-parser already uses for 64).
///
/// | Code | Meaning |
/// |---|---|
/// | 0 | OK |
/// | 1 | Unexpected error |
/// | 64 | Usage or configuration error |
/// | 65 | Invalid input data (diagnostics printed; rejected share over the threshold, header error, verify mismatch) |
/// | 66 | Input missing: an input file, or an upstream stage with no current run |
/// | 69 | Database unavailable |
/// | 73 | Work directory locked by another run |
/// | 74 | I/O error (disk full, read-only work dir, corrupt chunk) |
/// | 75 | Over a limit: the load would take the database over its environment's storage limit (nothing loaded) |
/// | 77 | Not permitted: prod with a superuser connection, or a destructive prod command without confirmation |
package enum ExitStatus: Int32, Sendable {
    case ok = 0
    case unexpected = 1
    case usage = 64
    case dataError = 65
    case noInput = 66
    case unavailable = 69
    case cantCreate = 73
    case ioError = 74
    case overLimit = 75
    case noPermission = 77
}

/// An error that knows its exit status and prints without a stack of prefixes.
package protocol ExitCodeError: Error, CustomStringConvertible {
    /// The process exit status this error maps to.
    var exitStatus: ExitStatus { get }
}

/// A pipeline error with a code, a message for operators, and its exit status.
package struct PipelineError: ExitCodeError, Equatable {
    package var exitStatus: ExitStatus
    package var message: String

    package init(_ exitStatus: ExitStatus, _ message: String) {
        self.exitStatus = exitStatus
        self.message = message
    }

    package var description: String { message }

    package static func usage(_ message: String) -> PipelineError { PipelineError(.usage, message) }
    package static func data(_ message: String) -> PipelineError { PipelineError(.dataError, message) }
    package static func noInput(_ message: String) -> PipelineError { PipelineError(.noInput, message) }
    package static func io(_ message: String) -> PipelineError { PipelineError(.ioError, message) }
}
