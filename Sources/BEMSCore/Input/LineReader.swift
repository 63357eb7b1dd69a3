import Crypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One line of an input file, valid only inside the ``LineReader/forEachLine(_:)`` callback.
package struct Line {
    /// The line's bytes without the line ending (`\n` or `\r\n`). For an over-long line, only its first
    /// ``LineReader/maxLineBytes`` bytes.
    package var bytes: UnsafeRawBufferPointer
    /// 1-based line number.
    package var number: Int
    /// False for a last line that ends without a newline.
    package var terminated: Bool
    /// The full length of the line when it was longer than the limit; `nil` otherwise.
    package var overlongLength: Int?
}

/// Streams a file line by line in constant memory and computes its SHA-256 on the way.
///
/// It reads 4 MiB blocks with `read(2)` and finds line ends with `memchr`. A line longer than `maxLineBytes` is
/// reported with its length and skipped without being buffered, so a 10 MB line or a file with no newline at all
/// costs no memory. A UTF-8 byte-order mark at the start is skipped. Hand-written for speed: this loop touches every
/// byte of the 700 MB dataset.
package final class LineReader {
    /// The file being read.
    package let path: String
    /// Lines longer than this are reported as over-long.
    package let maxLineBytes: Int
    /// Bytes read so far (the whole file once ``forEachLine(_:)`` returns).
    package private(set) var bytesRead = 0
    /// True when the file started with a UTF-8 byte-order mark.
    package private(set) var hadBOM = false
    /// The first bytes of the file, for encoding checks.
    package private(set) var leadingBytes: [UInt8] = []

    /// Called after each block's lines (and once at the end) with the bytes and lines since the last call: the
    /// stages' progress. Once per 4 MiB block, so it costs nothing per line.
    package var onBlock: ((_ bytes: Int, _ lines: Int) -> Void)?
    private var reportedBytes = 0
    private var reportedLines = 0

    private let fd: Int32
    private var hasher = SHA256()
    private let blockSize: Int

    /// Opens a file for reading.
    ///
    /// - Throws: ``PipelineError`` (exit 66) when the file can't be opened.
    package init(path: String, maxLineBytes: Int = 1 << 20, blockSize: Int = 4 << 20) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PipelineError.noInput("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        self.fd = fd
        self.path = path
        self.maxLineBytes = maxLineBytes
        self.blockSize = max(blockSize, maxLineBytes * 2)
    }

    deinit { close(fd) }

    /// The SHA-256 of the bytes read, as lowercase hex. Call after ``forEachLine(_:)``.
    package func finalizeDigest() -> String {
        Digest.hex(hasher.finalize())
    }

    /// Calls `body` for each line in order.
    ///
    /// - Throws: What `body` throws, or ``PipelineError`` (exit 74) on a read error.
    package func forEachLine(_ body: (Line) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blockSize, alignment: 64)
        defer { buffer.deallocate() }
        var filled = 0  // valid bytes in buffer
        var start = 0  // first byte of the current (unfinished) line
        var lineNumber = 0
        var eof = false
        var first = true
        var skipping = false  // inside an over-long line
        var skippedLength = 0
        var skippedNumber = 0
        var skippedPrefix: [UInt8] = []  // the first maxLineBytes bytes of an over-long line
        var skippedEndsWithCR = false  // the last byte counted in skippedLength is `\r`

        while true {
            // Emit every complete line in buffer[start..<filled].
            var scan = start
            while scan < filled {
                guard let hit = memchr(buffer.baseAddress! + scan, 0x0A, filled - scan) else { break }
                let nl = buffer.baseAddress!.distance(to: UnsafeMutableRawPointer(hit))
                if skipping {
                    skippedLength += nl - scan
                    // The `\r` of a CRLF is not part of the line, even when it ended the previous block.
                    if nl > scan ? buffer[nl - 1] == 0x0D : skippedEndsWithCR { skippedLength -= 1 }
                    try emitSkipped(skippedPrefix, skippedNumber, skippedLength, terminated: true, body)
                    skipping = false
                    skippedPrefix = []
                } else {
                    lineNumber += 1
                    var end = nl
                    if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                    let length = end - start
                    if length > maxLineBytes {
                        try body(
                            Line(
                                bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<(start + maxLineBytes)]),
                                number: lineNumber, terminated: true, overlongLength: length))
                    } else {
                        try body(
                            Line(
                                bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<end]),
                                number: lineNumber, terminated: true, overlongLength: nil))
                    }
                }
                start = nl + 1
                scan = start
            }
            if eof {
                if skipping {
                    skippedLength += filled - start
                    if filled > start ? buffer[filled - 1] == 0x0D : skippedEndsWithCR { skippedLength -= 1 }
                    try emitSkipped(skippedPrefix, skippedNumber, skippedLength, terminated: false, body)
                } else if start < filled {
                    lineNumber += 1
                    var end = filled
                    if buffer[end - 1] == 0x0D { end -= 1 }
                    let length = end - start
                    try body(
                        Line(
                            bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<min(end, start + maxLineBytes)]),
                            number: lineNumber, terminated: false, overlongLength: length > maxLineBytes ? length : nil)
                    )
                }
                reportBlock(lines: lineNumber)
                return
            }
            // The unfinished line doesn't fit the limit: drop it from the buffer and count its length instead.
            if !skipping, filled - start > maxLineBytes {
                lineNumber += 1
                skipping = true
                skippedNumber = lineNumber
                skippedLength = filled - start
                skippedEndsWithCR = buffer[filled - 1] == 0x0D
                skippedPrefix = Array(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + maxLineBytes)]))
                start = filled
            } else if skipping {
                if filled > start { skippedEndsWithCR = buffer[filled - 1] == 0x0D }
                skippedLength += filled - start
                start = filled
            }
            // Move the unfinished line to the front and read more.
            if start > 0 {
                let rest = filled - start
                if rest > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, rest) }
                filled = rest
                start = 0
            }
            reportBlock(lines: lineNumber)
            let n = try readMore(into: buffer, at: filled)
            if n == 0 {
                eof = true
                continue
            }
            if first {
                first = false
                leadingBytes = Array(UnsafeRawBufferPointer(rebasing: buffer[filled..<(filled + min(n, 4))]))
                if n >= 3, buffer[0] == 0xEF, buffer[1] == 0xBB, buffer[2] == 0xBF {
                    hadBOM = true
                    start = 3
                }
            }
            filled += n
        }
    }

    /// Reports a line that was dropped from the buffer while it was read. It can still be within the limit: a line of
    /// exactly `maxLineBytes` bytes whose `\r\n` had not arrived yet looked one byte too long.
    private func emitSkipped(
        _ prefix: [UInt8], _ number: Int, _ length: Int, terminated: Bool, _ body: (Line) throws -> Void
    ) throws {
        try prefix.withUnsafeBytes { prefix in
            try body(
                Line(
                    bytes: UnsafeRawBufferPointer(rebasing: prefix[..<min(prefix.count, length)]), number: number,
                    terminated: terminated, overlongLength: length > maxLineBytes ? length : nil))
        }
    }

    private func reportBlock(lines: Int) {
        guard let onBlock, bytesRead > reportedBytes || lines > reportedLines else { return }
        onBlock(bytesRead - reportedBytes, lines - reportedLines)
        reportedBytes = bytesRead
        reportedLines = lines
    }

    /// Reads the next block, retrying on EINTR, hashing what arrives.
    private func readMore(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        while true {
            let n = read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw PipelineError.io("\(path): read error (\(String(cString: strerror(errno))))")
            }
            if n > 0 {
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)]))
                bytesRead += n
            }
            return n
        }
    }
}
