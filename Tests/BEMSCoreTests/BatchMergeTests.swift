import Foundation
import Testing

@testable import BEMSCore

@Suite struct BatchMergeTests {
    /// A chunk in canonical order, from (sensor id, timestamp, value, status) rows in any order.
    static func chunk(_ rows: [(String, Int64, Int64, ReadingStatus)], sensorOrder: [String]? = nil) -> ChunkData {
        var data = ChunkData()
        for id in sensorOrder ?? [] { _ = data.addSensor(id) }
        for (id, t, v, s) in rows {
            let index = data.addSensor(id)
            data.append(sensorIndex: index, timestamp: t, value: v, status: s)
        }
        // What ChunkReader returns: the canonical order.
        let decoded = try! ChunkReader.decode(ChunkWriter.encode(data)).data
        return decoded
    }

    /// The merged rows as (sensor id, timestamp, value, status), in output order.
    static func rows(_ merged: MergedGroup) -> [String] {
        var out: [String] = []
        for s in merged.sensorIDs.indices {
            for r in merged.rows(ofSensor: s) {
                out.append(
                    "\(merged.sensorIDs[s])@\(merged.timestamps[r])=\(merged.values[r])/\(merged.statuses[r].label)")
            }
        }
        return out
    }

    @Test func identicalDuplicatesAreDroppedAndCounted() {
        let a = Self.chunk([("f1_a", 60, 10_000, .normal), ("f1_a", 120, 20_000, .normal), ("f1_b", 60, 5, .anomaly)])
        let b = Self.chunk([("f1_a", 120, 20_000, .normal), ("f1_b", 60, 5, .anomaly), ("f1_b", 180, 7, .normal)])
        let merged = BatchMerge.merge([
            MergeInput(data: a, sourceIndex: 0, sequence: 0, source: "a.csv"),
            MergeInput(data: b, sourceIndex: 1, sequence: 0, source: "b.csv"),
        ])
        #expect(merged.readingsIn == 6)
        #expect(merged.duplicatesDropped == 2)
        #expect(merged.conflicts.isEmpty)
        #expect(
            Self.rows(merged) == [
                "f1_a@60=10000/normal", "f1_a@120=20000/normal", "f1_b@60=5/anomaly", "f1_b@180=7/normal",
            ])
    }

    @Test func duplicatesInsideOneChunkAreCollapsedToTheLaterRow() {
        // Same key twice in one source (a repeated CSV row): the later row wins, identical ones are duplicates.
        let a = Self.chunk([("f1_a", 60, 1, .normal), ("f1_a", 60, 1, .normal), ("f1_a", 60, 3, .normal)])
        let merged = BatchMerge.merge([MergeInput(data: a, sourceIndex: 0, sequence: 0, source: "a.csv")])
        #expect(Self.rows(merged) == ["f1_a@60=3/normal"])
        #expect(merged.duplicatesDropped == 0)
        #expect(merged.conflicts.count == 2)
        #expect(merged.conflicts.allSatisfy { $0.keptValue == 3 && $0.droppedValue == 1 })
    }

    @Test func conflictsAreWonByTheLaterSourceAndAllReported() {
        let a = Self.chunk([("f2_x", 60, 100, .normal), ("f2_x", 120, 200, .normal), ("f2_y", 60, 1, .normal)])
        let b = Self.chunk([("f2_x", 60, 101, .normal), ("f2_y", 60, 1, .anomaly)])
        let c = Self.chunk([("f2_x", 60, 100, .normal), ("f2_x", 120, 250, .normal)])
        let merged = BatchMerge.merge([
            MergeInput(data: a, sourceIndex: 0, sequence: 0, source: "2018Floor2.csv"),
            MergeInput(data: b, sourceIndex: 1, sequence: 0, source: "extra.csv"),
            MergeInput(data: c, sourceIndex: 2, sequence: 0, source: "2019Floor2.csv"),
        ])
        #expect(Self.rows(merged) == ["f2_x@60=100/normal", "f2_x@120=250/normal", "f2_y@60=1/anomaly"])
        // f2_x@60: a (100) equals the kept c (100) -> duplicate; b (101) -> conflict against c.
        #expect(merged.duplicatesDropped == 1)
        #expect(merged.conflicts.count == 3)
        let byKey = Dictionary(grouping: merged.conflicts) { "\($0.sensorID)@\($0.timestamp)" }
        let x60 = try! #require(byKey["f2_x@60"]?.first)
        #expect(x60.keptValue == 100 && x60.keptSource == "2019Floor2.csv")
        #expect(x60.droppedValue == 101 && x60.droppedSource == "extra.csv")
        let x120 = try! #require(byKey["f2_x@120"]?.first)
        #expect(x120.keptValue == 250 && x120.droppedValue == 200 && x120.droppedSource == "2018Floor2.csv")
        // A status-only difference is a conflict too.
        let y60 = try! #require(byKey["f2_y@60"]?.first)
        #expect(y60.keptStatus == .anomaly && y60.droppedStatus == .normal && y60.keptSource == "extra.csv")
        #expect(
            x60.jsonLine
                == #"{"sensor_id":"f2_x","timestamp":"1970-01-01T00:01:00Z","unix":60,"kept":{"value":"0.0100","status":"normal","source":"2019Floor2.csv"},"dropped":{"value":"0.0101","status":"normal","source":"extra.csv"}}"#
        )
    }

    @Test func sequenceBreaksTiesWithinOneSource() {
        let first = Self.chunk([("f1_a", 60, 1, .normal)])
        let second = Self.chunk([("f1_a", 60, 2, .normal)])
        let merged = BatchMerge.merge([
            MergeInput(data: second, sourceIndex: 0, sequence: 1, source: "a.csv"),
            MergeInput(data: first, sourceIndex: 0, sequence: 0, source: "a.csv"),
        ])
        #expect(Self.rows(merged) == ["f1_a@60=2/normal"])
    }

    @Test(arguments: 0..<6)
    func resultIsIndependentOfChunkFileOrder(seed: Int) {
        // Three sources with overlapping random keys; every permutation of the inputs gives the same result.
        var rng = SplitMix(seed: 42)
        let sensors = ["f3_a", "f3_b", "f3_c", "f3_d"]
        var inputs: [MergeInput] = []
        for source in 0..<3 {
            var rows: [(String, Int64, Int64, ReadingStatus)] = []
            for _ in 0..<400 {
                let s = sensors[Int(rng.next() % 4)]
                rows.append(
                    (s, Int64(rng.next() % 200) * 60, Int64(rng.next() % 3), rng.next() % 5 == 0 ? .anomaly : .normal))
            }
            // Each chunk lists its sensors in its own dictionary order.
            let order = sensors.shuffled(using: &rng)
            inputs.append(
                MergeInput(
                    data: Self.chunk(rows, sensorOrder: order), sourceIndex: source, sequence: 0, source: "s\(source)"))
        }
        let reference = BatchMerge.merge(inputs)
        let permutations = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
        let merged = BatchMerge.merge(permutations[seed].map { inputs[$0] })
        #expect(Self.rows(merged) == Self.rows(reference))
        #expect(merged.conflicts == reference.conflicts)
        #expect(merged.duplicatesDropped == reference.duplicatesDropped)
        #expect(merged.count + merged.duplicatesDropped + merged.conflicts.count == merged.readingsIn)

        // And it agrees with a naive dictionary implementation: the last reading in (source, row) order wins.
        var naive: [String: (Int64, ReadingStatus)] = [:]
        for input in inputs {
            for i in 0..<input.data.count {
                let key = "\(input.data.sensorIDs[Int(input.data.sensorIndexes[i])])@\(input.data.timestamps[i])"
                naive[key] = (input.data.values[i], input.data.statuses[i])
            }
        }
        #expect(merged.count == naive.count)
        for s in merged.sensorIDs.indices {
            for r in merged.rows(ofSensor: s) {
                let kept = naive["\(merged.sensorIDs[s])@\(merged.timestamps[r])"]
                #expect(kept?.0 == merged.values[r] && kept?.1 == merged.statuses[r])
            }
        }
    }

    @Test func mergesMillionsOfReadingsPerSecond() {
        // Two sources of one floor-day: 60 sensors × 1440 minutes each, half of the second overlapping.
        let sensors = (0..<60).map { "f7_s\($0)" }
        func make(offset: Int64, value: Int64) -> ChunkData {
            var data = ChunkData(sensorIDs: sensors)
            data.reserveCapacity(60 * 1440)
            for s in 0..<60 {
                for m in 0..<1440 {
                    data.append(
                        sensorIndex: UInt32(s), timestamp: offset + Int64(m) * 60, value: value, status: .normal)
                }
            }
            return data
        }
        let inputs = [
            MergeInput(data: make(offset: 0, value: 1), sourceIndex: 0, sequence: 0, source: "a"),
            MergeInput(data: make(offset: 720 * 60, value: 1), sourceIndex: 1, sequence: 0, source: "b"),
        ]
        let start = Date()
        var total = 0
        for _ in 0..<5 { total += BatchMerge.merge(inputs).readingsIn }
        let rate = Double(total) / Date().timeIntervalSince(start)
        let merged = BatchMerge.merge(inputs)
        #expect(merged.count == 60 * (1440 + 720))
        #expect(merged.duplicatesDropped == 60 * 720)
        // Debug builds are far slower than release; this only guards against pathological slowness.
        #expect(rate > 200_000, "merge rate \(Int(rate)) readings/s")
    }
}

/// A tiny deterministic generator for reproducible test data.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
