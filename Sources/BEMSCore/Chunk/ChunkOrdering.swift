/// The canonical row order of a chunk: by sensor index, then timestamp; equal keys keep input order (stable).
enum ChunkOrdering {
    /// Counts rows per sensor and computes the permutation into canonical order.
    ///
    /// Runs a counting sort by sensor index (O(n)), then checks each sensor run for ascending timestamps and sorts
    /// only the runs that are not (stable, by timestamp then input position).
    ///
    /// - Precondition: every sensor index is below `sensorCount`.
    /// - Returns: Rows per sensor, and `permutation[p]` = input row at canonical position `p`, or `nil` when the
    ///   input is already canonical.
    static func order(
        sensorIndexes: [UInt32], timestamps: [Int64], sensorCount: Int
    ) -> (counts: [Int], permutation: [UInt32]?) {
        let n = sensorIndexes.count
        var counts = [Int](repeating: 0, count: sensorCount)
        var canonical = true
        sensorIndexes.withUnsafeBufferPointer { sensors in
            timestamps.withUnsafeBufferPointer { times in
                counts.withUnsafeMutableBufferPointer { counts in
                    var previousSensor: UInt32 = 0
                    var previousTime = Int64.min
                    for i in 0..<n {
                        let s = sensors[i]
                        let t = times[i]
                        counts[Int(s)] &+= 1
                        if s < previousSensor || (s == previousSensor && t < previousTime) { canonical = false }
                        previousSensor = s
                        previousTime = t
                    }
                }
            }
        }
        if canonical { return (counts, nil) }

        var permutation = [UInt32](repeating: 0, count: n)
        var next = [Int](repeating: 0, count: sensorCount)
        var running = 0
        for s in 0..<sensorCount {
            next[s] = running
            running += counts[s]
        }
        sensorIndexes.withUnsafeBufferPointer { sensors in
            timestamps.withUnsafeBufferPointer { times in
                permutation.withUnsafeMutableBufferPointer { perm in
                    next.withUnsafeMutableBufferPointer { next in
                        for i in 0..<n {
                            let s = Int(sensors[i])
                            perm[next[s]] = UInt32(truncatingIfNeeded: i)
                            next[s] &+= 1
                        }
                    }
                    // Within each sensor run the rows are in input order; sort only runs that are not ascending.
                    var start = 0
                    for s in 0..<sensorCount {
                        let end = start + counts[s]
                        var sorted = true
                        var p = start + 1
                        while p < end {
                            if times[Int(perm[p])] < times[Int(perm[p - 1])] {
                                sorted = false
                                break
                            }
                            p += 1
                        }
                        if !sorted {
                            perm[start..<end].sort { a, b in
                                let ta = times[Int(a)]
                                let tb = times[Int(b)]
                                return ta < tb || (ta == tb && a < b)
                            }
                        }
                        start = end
                    }
                }
            }
        }
        return (counts, permutation)
    }

    /// The permutation into canonical order, or `nil` when the input is already canonical.
    static func permutation(sensorIndexes: [UInt32], timestamps: [Int64], sensorCount: Int) -> [UInt32]? {
        order(sensorIndexes: sensorIndexes, timestamps: timestamps, sensorCount: sensorCount).permutation
    }
}
