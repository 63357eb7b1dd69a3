/// A set of whole minutes, as a paged bitmap: 64 KiB covers 1.4 years, and memory grows with the time span covered,
/// not with the file size.
struct MinuteSet {
    private static let pageBits = 1 << 15
    private var pages: [Int64: [UInt64]] = [:]
    private(set) var count = 0
    /// The page of the previous insert: rows come in time order, so this skips the dictionary almost always.
    private var lastPage = Int64.min
    private var lastWords: [UInt64] = []

    /// Inserts a minute; returns false when it was already there.
    mutating func insert(_ minute: Int64) -> Bool {
        let page =
            minute >= 0 ? minute / Int64(Self.pageBits) : (minute - Int64(Self.pageBits) + 1) / Int64(Self.pageBits)
        let bit = Int(minute - page * Int64(Self.pageBits))
        if page != lastPage {
            if lastPage != .min { pages[lastPage] = lastWords }
            lastWords = pages.removeValue(forKey: page) ?? Array(repeating: 0, count: Self.pageBits / 64)
            lastPage = page
        }
        let mask: UInt64 = 1 << UInt64(bit & 63)
        let word = lastWords[bit >> 6]
        if word & mask != 0 { return false }
        lastWords[bit >> 6] = word | mask  // in place: the page is held outside the dictionary
        count += 1
        return true
    }
}
