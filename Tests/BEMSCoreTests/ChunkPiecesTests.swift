import Foundation
import Testing

@testable import BEMSCore

@Suite struct ChunkPiecesTests {
    @Test(arguments: [
        (0..<40_000, 10_000, [0..<20_000, 20_000..<40_000]),
        (0..<20_000, 10_000, [0..<10_000, 10_000..<20_000]),
        (100..<107, 3, [100..<104, 104..<107]),
        (0..<2, 1, [0..<1, 1..<2]),
    ])
    func halvesKeepOrderAndCoverThePiece(piece: Range<Int>, floor: Int, expected: [Range<Int>]) throws {
        let (a, b) = try #require(ChunkPieces.halves(of: piece, minimumRows: floor))
        #expect([a, b] == expected)
        #expect(a.lowerBound == piece.lowerBound && a.upperBound == b.lowerBound && b.upperBound == piece.upperBound)
    }

    @Test(arguments: [(0..<19_999, 10_000), (0..<10_000, 10_000), (5..<6, 1), (0..<0, 1), (0..<1, 0)])
    func aPieceAtTheFloorIsNotHalved(piece: Range<Int>, floor: Int) {
        #expect(ChunkPieces.halves(of: piece, minimumRows: floor) == nil)
    }

    @Test func repeatedHalvingStopsAtTheFloor() {
        var pieces = [0..<40_000]
        var splits = 0
        while let i = pieces.firstIndex(where: { ChunkPieces.halves(of: $0, minimumRows: 10_000) != nil }) {
            let (a, b) = ChunkPieces.halves(of: pieces[i], minimumRows: 10_000)!
            pieces.replaceSubrange(i...i, with: [a, b])
            splits += 1
        }
        #expect(pieces == [0..<10_000, 10_000..<20_000, 20_000..<30_000, 30_000..<40_000])
        #expect(splits == 3)
    }

    @Test(arguments: [
        (10, [Range<Int>](), [0..<10]),
        (10, [0..<10], []),
        (10, [0..<4, 4..<10], []),
        (10, [4..<6], [0..<4, 6..<10]),
        (10, [6..<10, 0..<2], [2..<6]),
        (10, [0..<5, 3..<8], [8..<10]),
        (10, [12..<15], [0..<10]),
        (0, [], []),
        (0, [0..<0], []),
    ])
    func gapsAreTheRowsNoPieceCovers(rows: Int, covered: [Range<Int>], expected: [Range<Int>]) {
        #expect(ChunkPieces.gaps(rows: rows, covered: covered) == expected)
    }

    @Test func overlapIsDetected() {
        #expect(!ChunkPieces.overlap([0..<5, 5..<10]))
        #expect(!ChunkPieces.overlap([5..<10, 0..<5, 10..<10]))
        #expect(ChunkPieces.overlap([0..<6, 5..<10]))
        #expect(ChunkPieces.overlap([5..<10, 0..<20]))
    }

    @Test func rangesAreDescribedWithInclusiveRowNumbers() {
        #expect(ChunkPieces.describe([0..<10_000, 20_000..<20_001]) == "0-9999, 20000-20000")
        #expect(ChunkPieces.describe([]) == "")
    }

    @Test func coverageSumsPiecesAndFindsGapsAndExactPieces() {
        let coverage = LoadLedger.ChunkCoverage(pieces: [
            .init(runID: 2, start: 5_000, rowCount: 5_000, inserted: 4_000, updated: 1_000),
            .init(runID: 1, start: 0, rowCount: 2_500, inserted: 2_500, updated: 0),
        ])
        #expect(coverage.pieces.map(\.start) == [0, 5_000])
        #expect(coverage.rowCount == 7_500 && coverage.inserted == 6_500 && coverage.updated == 1_000)
        #expect(coverage.gaps(rows: 10_000) == [2_500..<5_000])
        #expect(!coverage.hasOverlap)
        #expect(coverage.piece(covering: 5_000..<10_000)?.runID == 2)
        #expect(coverage.piece(covering: 5_000..<7_500) == nil)
        #expect(LoadLedger.key(name: "chunks/f1-2019-01-01.bemc", sha256: "ab") == "chunks/f1-2019-01-01.bemc|ab")
    }

    @Test func outcomesOfHalvesAddUp() {
        let a = ChunkLoader.Outcome(inserted: 3, updated: 1, steps: ["copy": 0.5, "ids": 0.25])
        let b = ChunkLoader.Outcome(inserted: 2, updated: 4, steps: ["copy": 0.25, "stats": 1])
        let sum = a + b
        #expect(sum.inserted == 5 && sum.updated == 5)
        #expect(sum.steps == ["copy": 0.75, "ids": 0.25, "stats": 1])
    }
}
