import Testing

@testable import BEMSCore

@Suite struct LineReaderTests {
    struct Seen: Equatable {
        var text: String
        var number: Int
        var terminated: Bool
        var overlong: Int?
    }

    func lines(_ bytes: [UInt8], maxLine: Int = 1024, block: Int = 4096) throws -> ([Seen], LineReader) {
        let dir = TemporaryDirectory()
        let path = dir.write("f.csv", bytes)
        let reader = try LineReader(path: path, maxLineBytes: maxLine, blockSize: block)
        var seen: [Seen] = []
        try reader.forEachLine { line in
            seen.append(
                Seen(
                    text: String(decoding: line.bytes, as: UTF8.self), number: line.number, terminated: line.terminated,
                    overlong: line.overlongLength))
        }
        return (seen, reader)
    }

    @Test func splitsLFAndCRLFAndKeepsAnUnterminatedLastLine() throws {
        let (seen, _) = try lines(Array("a,b\r\nc\n\nd\r\n2".utf8))
        #expect(seen.map(\.text) == ["a,b", "c", "", "d", "2"])
        #expect(seen.map(\.number) == [1, 2, 3, 4, 5])
        #expect(seen.map(\.terminated) == [true, true, true, true, false])
    }

    @Test func skipsAUTF8ByteOrderMark() throws {
        let (seen, reader) = try lines([0xEF, 0xBB, 0xBF] + Array("Date\n1\n".utf8))
        #expect(seen.map(\.text) == ["Date", "1"])
        #expect(reader.hadBOM)
    }

    @Test func emptyFileHasNoLines() throws {
        let (seen, reader) = try lines([])
        #expect(seen.isEmpty)
        #expect(reader.bytesRead == 0)
        #expect(reader.finalizeDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test(arguments: [16, 64, 4096])
    func linesAcrossBlockBoundariesAreWhole(block: Int) throws {
        let text =
            (0..<200).map { "line-\($0)-" + String(repeating: "x", count: $0 % 13) }.joined(separator: "\n") + "\n"
        let (seen, reader) = try lines(Array(text.utf8), maxLine: 8, block: block)
        // maxLine 8 with blockSize forced to at least 2 × maxLine: long lines are reported over-long.
        #expect(seen.count == 200)
        for (i, s) in seen.enumerated() {
            let full = "line-\(i)-" + String(repeating: "x", count: i % 13)
            if full.utf8.count > 8 {
                #expect(s.overlong == full.utf8.count)
                #expect(s.text == String(full.prefix(8)))
            } else {
                #expect(s.text == full)
            }
        }
        #expect(reader.bytesRead == text.utf8.count)
        #expect(reader.finalizeDigest() == Digest.sha256Hex(Array(text.utf8)))
    }

    @Test func aTenMegabyteLineIsReportedNotBuffered() throws {
        var bytes = Array("Date,x\n".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "9"), count: 10 << 20)
        bytes += Array("\nok\n".utf8)
        let (seen, _) = try lines(bytes, maxLine: 1 << 20, block: 4 << 20)
        #expect(seen.count == 3)
        #expect(seen[1].overlong == 10 << 20)
        #expect(seen[1].number == 2)
        #expect(seen[1].text.utf8.count == 1 << 20)
        #expect(seen[2].text == "ok")
        #expect(seen[2].number == 3)
    }

    @Test func anOverlongLastLineWithoutNewline() throws {
        let bytes = Array("a\n".utf8) + [UInt8](repeating: 0x41, count: 5000)
        let (seen, _) = try lines(bytes, maxLine: 100, block: 256)
        #expect(seen.count == 2)
        #expect(seen[1].overlong == 5000)
        #expect(seen[1].terminated == false)
    }

    @Test func missingFileIsExit66() {
        let error = #expect(throws: PipelineError.self) { try LineReader(path: "/nonexistent/x.csv") }
        #expect(error?.exitStatus == .noInput)
    }

    @Test func reportsEveryBlockOnceBytesAndLinesAddingUpToTheFile() throws {
        let dir = TemporaryDirectory()
        var text = ""
        for i in 0..<2_000 { text += "line \(i),\(String(repeating: "x", count: i % 37))\n" }
        text += "last, unterminated"
        let path = dir.write("f.csv", text)
        let reader = try LineReader(path: path, maxLineBytes: 256, blockSize: 4096)
        var calls: [(Int, Int)] = []
        reader.onBlock = { calls.append(($0, $1)) }
        var lines = 0
        try reader.forEachLine { _ in lines += 1 }
        #expect(lines == 2_001)
        #expect(calls.count > 10)
        #expect(calls.reduce(0) { $0 + $1.0 } == text.utf8.count)
        #expect(calls.reduce(0) { $0 + $1.1 } == 2_001)
        #expect(calls.allSatisfy { $0.0 > 0 || $0.1 > 0 })
    }
}
