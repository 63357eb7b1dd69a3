// libFuzzer target: TimestampParser over arbitrary bytes.
//
// Oracle: an accepted timestamp formats back to exactly the input text (so no impossible date is ever accepted).
@testable import BEMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    do throws(TimestampParseError) {
        let seconds = try TimestampParser.parse(bytes, from: 0, to: count)
        let text = TimestampParser.format(localSeconds: seconds)
        precondition(
            Array(text.utf8) == Array(bytes),
            "accepted \(String(decoding: bytes, as: UTF8.self)) but it formats as \(text)")
    } catch {
        precondition(error.offset >= 0 && error.offset < max(count, 1), "error offset \(error.offset) outside input")
    }
    return 0
}
