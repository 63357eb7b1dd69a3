// libFuzzer target: DecimalParser over arbitrary bytes.
//
// Oracle: a parsed value is within DECIMAL(10,4), and formatting it and parsing the text again gives the same value.
@testable import BEMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    do throws(NumberParseError) {
        let value = try DecimalParser.parse(bytes, from: 0, to: count)
        precondition(abs(value) <= 9_999_999_999, "DecimalParser accepted \(value), beyond DECIMAL(10,4)")
        let text = ScaledDecimal.format(value)
        let again = try DecimalParser.parse(text)
        precondition(again == value, "format/parse round trip: \(value) -> \(text) -> \(again)")
    } catch {
        precondition(error.offset >= 0 && error.offset <= count, "error offset \(error.offset) outside 0...\(count)")
    }
    return 0
}
