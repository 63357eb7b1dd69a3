import Foundation

/// One rejected record, as a line of `dead-letter.jsonl`.
package struct DeadLetter: Codable, Equatable, Sendable {
    package var file: String
    package var line: Int
    package var column: Int
    package var code: RejectCode
    package var message: String
    /// The sensor column of a rejected cell; absent for a whole-row rejection.
    package var sensorID: String?
    /// The raw line (invalid UTF-8 replaced by U+FFFD), at most 64 KiB.
    package var raw: String
    /// The raw bytes, base64, when the line is not valid UTF-8 (so nothing is lost).
    package var rawBase64: String?
    /// True when `raw` was cut at 64 KiB.
    package var rawTruncated: Bool?
}

/// Appends dead letters to a JSON Lines file through a buffer.
package final class DeadLetterWriter {
    /// Raw lines are cut at this many bytes in the dead-letter file.
    package static let rawLimit = 64 << 10

    private let handle: FileHandle
    private let path: String
    private var buffer = Data()
    private let encoder: JSONEncoder
    package private(set) var count = 0

    package init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw PipelineError.io("\(path): cannot create the dead-letter file") }
        self.handle = handle
        self.path = path
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    /// Records one rejection of `line`.
    package func append(file: String, line: Line, error: CellError) throws {
        let raw = line.bytes
        let cut = UnsafeRawBufferPointer(rebasing: raw[0..<min(raw.count, Self.rawLimit)])
        let valid = String(validating: cut, as: UTF8.self)
        let letter = DeadLetter(
            file: file, line: line.number, column: error.column, code: error.code, message: error.message,
            sensorID: error.sensorID, raw: valid ?? String(decoding: cut, as: UTF8.self),
            rawBase64: valid == nil ? Data(cut).base64EncodedString() : nil,
            rawTruncated: raw.count > Self.rawLimit || line.overlongLength != nil ? true : nil)
        buffer.append(try encoder.encode(letter))
        buffer.append(0x0A)
        count += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// - Throws: ``PipelineError`` 74 naming the file (disk full, read-only, file size limit).
    package func flush() throws {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw PipelineError.io("\(path): cannot write the dead-letter file (\(AtomicFile.reason(error)))")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    package func close() throws {
        do {
            try flush()
        } catch {
            try? handle.close()
            throw error
        }
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw PipelineError.io("\(path): cannot flush the dead-letter file (\(AtomicFile.reason(error)))")
        }
    }
}
