/// Writes readings held as integer hundredths in the shortest decimal form, like pandas and the real files.
///
/// `0` or `0.0`, `0.31`, `28.36`, `62.5`, `4762.43`: trailing zeros of the fraction are dropped, and a whole value is
/// written either bare (`0`, `45`) or with `.0` (`0.0`, `45.0`) depending on the column's style. No `Double` is
/// involved.
enum SampleNumberFormat {
    /// The longest text one value can produce: sign, 17 digits, point, two decimals.
    static let maxLength = 21

    /// Writes `hundredths` at `p` and returns the number of bytes written.
    ///
    /// - Parameters:
    ///   - hundredths: The value × 100.
    ///   - wholeAsInteger: `true` writes whole values as `45`, `false` as `45.0`.
    ///   - p: Room for at least ``maxLength`` bytes.
    @inline(__always)
    static func write(_ hundredths: Int64, wholeAsInteger: Bool, to p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        var magnitude = hundredths.magnitude
        if hundredths < 0 {
            p[0] = UInt8(ascii: "-")
            n = 1
        }
        let fraction = Int(magnitude % 100)
        magnitude /= 100
        // Whole part, most significant digit first.
        if magnitude < 10 {
            p[n] = UInt8(truncatingIfNeeded: magnitude) &+ 48
            n += 1
        } else if magnitude < 100 {
            p[n] = UInt8(truncatingIfNeeded: magnitude / 10) &+ 48
            p[n + 1] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
            n += 2
        } else {
            var digits = 0
            var m = magnitude
            while m > 0 {
                digits += 1
                m /= 10
            }
            var i = n + digits - 1
            m = magnitude
            while m > 0 {
                p[i] = UInt8(truncatingIfNeeded: m % 10) &+ 48
                m /= 10
                i -= 1
            }
            n += digits
        }
        if fraction == 0 {
            if !wholeAsInteger {
                p[n] = UInt8(ascii: ".")
                p[n + 1] = UInt8(ascii: "0")
                n += 2
            }
        } else {
            p[n] = UInt8(ascii: ".")
            p[n + 1] = UInt8(truncatingIfNeeded: fraction / 10) &+ 48
            if fraction % 10 == 0 {
                n += 2
            } else {
                p[n + 2] = UInt8(truncatingIfNeeded: fraction % 10) &+ 48
                n += 3
            }
        }
        return n
    }

    /// The text for one value, for tests and messages.
    static func string(_ hundredths: Int64, wholeAsInteger: Bool) -> String {
        var bytes = [UInt8](repeating: 0, count: maxLength)
        let n = bytes.withUnsafeMutableBufferPointer {
            write(hundredths, wholeAsInteger: wholeAsInteger, to: $0.baseAddress!)
        }
        return String(decoding: bytes[..<n], as: UTF8.self)
    }
}
