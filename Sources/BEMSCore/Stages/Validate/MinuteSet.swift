/// A set of whole minutes, as a paged bitmap: 64 KiB covers 1.4 years, and memory grows with the time span covered,
/// not with the file size.
struct MinuteSet {
    private static let pageBits = 1 << 15
    private var pages: [Int64: [UInt64]] = [:]
    private(set) var count = 0

    /// Inserts a minute; returns false when it was already there.
    mutating func insert(_ minute: Int64) -> Bool {
        let page =
            minute >= 0 ? minute / Int64(Self.pageBits) : (minute - Int64(Self.pageBits) + 1) / Int64(Self.pageBits)
        let bit = Int(minute - page * Int64(Self.pageBits))
        if pages[page] == nil { pages[page] = Array(repeating: 0, count: Self.pageBits / 64) }
        let mask: UInt64 = 1 << UInt64(bit & 63)
        let word = pages[page]![bit >> 6]
        if word & mask != 0 { return false }
        pages[page]![bit >> 6] = word | mask  // in place, no copy of the page
        count += 1
        return true
    }
}
