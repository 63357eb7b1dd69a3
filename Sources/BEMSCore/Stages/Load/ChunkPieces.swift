/// Pieces of a chunk: the row ranges the loader commits one transaction each.
///
/// A chunk's rows are in canonical order (sensor, then timestamp; ``ChunkOrdering``) and every row is a distinct
/// key, so a contiguous row range is a contiguous key range and never splits a key. Normally a chunk is one piece,
/// `0..<rows`. When a piece's COPY or update hits the statement timeout, the loader commits it as two halves instead
/// (``halves(of:minimumRows:)``), recursively, down to `load.minPieceRows`. Each committed piece has its own
/// `loaded_chunks` row (keyed by chunk name, SHA-256 and `piece_start`), so a rerun loads only the ranges no
/// committed piece covers (``gaps(rows:covered:)``).
package enum ChunkPieces {
    /// Splits a piece into two halves of `⌈n/2⌉` and `⌊n/2⌋` rows, or returns `nil` when a half would have fewer
    /// than `minimumRows` rows (the piece is at the floor).
    package static func halves(of piece: Range<Int>, minimumRows: Int) -> (Range<Int>, Range<Int>)? {
        let half = piece.count - piece.count / 2
        guard piece.count / 2 >= max(1, minimumRows) else { return nil }
        let middle = piece.lowerBound + half
        return (piece.lowerBound..<middle, middle..<piece.upperBound)
    }

    /// The row ranges of `0..<rows` that no range of `covered` includes, in order.
    package static func gaps(rows: Int, covered: [Range<Int>]) -> [Range<Int>] {
        var gaps: [Range<Int>] = []
        var next = 0
        for range in covered.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.lowerBound > next { gaps.append(next..<min(range.lowerBound, rows)) }
            next = max(next, range.upperBound)
            if next >= rows { break }
        }
        if next < rows { gaps.append(next..<rows) }
        return gaps.filter { !$0.isEmpty }
    }

    /// Whether two ranges of `covered` share a row (a chunk loaded twice; never expected).
    package static func overlap(_ covered: [Range<Int>]) -> Bool {
        let sorted = covered.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        return zip(sorted, sorted.dropFirst()).contains { $0.upperBound > $1.lowerBound }
    }

    /// Ranges as text for messages: `0-9999, 20000-39999` (inclusive row numbers).
    package static func describe(_ ranges: [Range<Int>]) -> String {
        ranges.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ", ")
    }
}
