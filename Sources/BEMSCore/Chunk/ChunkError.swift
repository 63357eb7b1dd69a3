/// An error raised while encoding, decoding, reading or writing a chunk.
///
/// The ``code`` says what kind of failure it is, ``message`` gives the detail, and ``offset`` names the byte
/// offset in the chunk where the problem was found, when there is one.
package struct ChunkError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The kind of chunk error; an extensible set of named constants.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case badMagic, unsupportedVersion, truncated, checksumMismatch, corrupt, zstd, invalidInput, io,
                fileNotFound
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// The bytes do not start with the chunk magic `BEMSCHNK`: not a chunk file.
        package static let badMagic = Code(.badMagic)
        /// The format version, or a required column, is not understood by this reader.
        package static let unsupportedVersion = Code(.unsupportedVersion)
        /// The bytes end before the length the chunk declares.
        package static let truncated = Code(.truncated)
        /// The preamble check or the SHA-256 footer does not match the bytes.
        package static let checksumMismatch = Code(.checksumMismatch)
        /// The checksum matched but the structure is inconsistent (bad lengths, counts, stats or varints).
        package static let corrupt = Code(.corrupt)
        /// libzstd failed to compress or decompress a column block.
        package static let zstd = Code(.zstd)
        /// ``ChunkWriter`` was given data it cannot encode (mismatched column lengths, values out of range, …).
        package static let invalidInput = Code(.invalidInput)
        /// A file system call failed in ``ChunkFile``.
        package static let io = Code(.io)
        /// ``ChunkFile/read(_:maxSize:)`` was asked for a file that does not exist (`ENOENT`).
        package static let fileNotFound = Code(.fileNotFound)

        /// The code's name, for example `checksumMismatch`.
        package var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    package var code: Code
    /// Human-readable detail.
    package var message: String
    /// The byte offset in the chunk where the problem applies, if any.
    package var offset: Int?

    /// Creates an error.
    package init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// `<code> at byte <offset>: <message>` (or without the offset when there is none).
    package var description: String {
        if let offset {
            return "chunk \(code) at byte \(offset): \(message)"
        }
        return "chunk \(code): \(message)"
    }
}
