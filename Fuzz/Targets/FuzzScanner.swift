// libFuzzer target: LineReader over a whole file, and FloorFileScanner (header, BOM, CRLF, over-long lines).
//
// The input is written to a temporary file and read with maxLineBytes 64 and a 128-byte read block, so short
// inputs already cross block boundaries and take the over-long-line paths. Oracle: the lines equal an independent
// split of the bytes (BOM dropped, `\n` separated, one `\r` before it dropped, an unterminated last line flagged);
// an over-long line has its first 64 bytes and its full length. Every 8th input (by length) also goes through
// FloorFileScanner as 2019Floor1.csv: no trap, and every row error column lies inside its line.
import Foundation

@testable import BEMSCore

nonisolated(unsafe) private let path: String = {
    let dir = NSTemporaryDirectory() + "bems-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/2019Floor1.csv"
}()

private let limit = 64

/// The lines the reader must report: (bytes, terminated).
private func expectedLines(_ input: [UInt8]) -> [([UInt8], Bool)] {
    var body = input[...]
    if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
    var out: [([UInt8], Bool)] = []
    var parts = body.split(separator: 0x0A, omittingEmptySubsequences: false)
    let last = parts.removeLast()
    for part in parts { out.append((Array(part.last == 0x0D ? part.dropLast() : part), true)) }
    if !last.isEmpty { out.append((Array(last.last == 0x0D ? last.dropLast() : last), false)) }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    // Plain open/write: FileManager's atomic write (temp file + rename) costs more than the parsing.
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0 && write(fd, start, count) == count && close(fd) == 0, "cannot write \(path)")
    let want = expectedLines(input)
    var got = 0
    let reader = try! LineReader(path: path, maxLineBytes: limit, blockSize: 16)
    try! reader.forEachLine { line in
        precondition(got < want.count, "more lines than the input has")
        let (bytes, terminated) = want[got]
        got += 1
        precondition(line.number == got, "line \(line.number) reported as number \(got)")
        precondition(line.terminated == terminated, "line \(got): terminated \(line.terminated)")
        if bytes.count > limit {
            precondition(
                line.overlongLength == bytes.count, "line \(got): length \(line.overlongLength ?? -1) != \(bytes.count)"
            )
            precondition(Array(line.bytes) == Array(bytes.prefix(limit)), "line \(got): wrong prefix")
        } else {
            precondition(line.overlongLength == nil, "line \(got) of \(bytes.count) bytes reported over-long")
            precondition(Array(line.bytes) == bytes, "line \(got): wrong bytes")
        }
    }
    precondition(got == want.count, "\(got) lines reported, \(want.count) in the input")
    precondition(reader.bytesRead == count, "read \(reader.bytesRead) of \(count) bytes")

    guard count % 8 == 0 else { return 0 }
    var config = PipelineConfig()
    config.maxLineBytes = limit
    do {
        _ = try FloorFileScanner.scan(InputFile(path: path, floor: 1), config: config) { row, line in
            if let error = row.rowError, line.overlongLength == nil {
                precondition(error.column >= 1 && error.column <= line.bytes.count + 1, "column \(error.column)")
            }
            for error in row.cellErrors {
                precondition(error.column >= 1 && error.column <= line.bytes.count + 1, "column \(error.column)")
            }
        }
    } catch is HeaderFailure {
    } catch {
        preconditionFailure("unexpected error \(error)")
    }
    return 0
}
