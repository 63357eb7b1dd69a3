/// A seeded xoshiro256** pseudo-random generator for the sample generator.
///
/// The state is expanded from one 64-bit seed with SplitMix64, so the same seed always gives the same sequence on
/// every platform. It never reads system randomness.
package struct SampleRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Creates a generator whose whole sequence is fixed by `seed`.
    ///
    /// - Parameter seed: Any 64-bit value; nearby seeds give unrelated sequences.
    package init(seed: UInt64) {
        var sm = seed
        s0 = Self.splitMix(&sm)
        s1 = Self.splitMix(&sm)
        s2 = Self.splitMix(&sm)
        s3 = Self.splitMix(&sm)
    }

    /// Returns the next 64 random bits.
    @inline(__always)
    package mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Returns a value in `0..<bound` (multiply-high reduction; the tiny bias is irrelevant here).
    ///
    /// - Parameter bound: The exclusive upper bound; must be positive.
    @inline(__always)
    package mutating func next(below bound: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// Returns a value in `range`.
    @inline(__always)
    package mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + next(below: range.upperBound - range.lowerBound + 1)
    }

    /// Returns `true` with probability `perMille / 1000`.
    @inline(__always)
    package mutating func chance(perMille: Int) -> Bool {
        next(below: 1000) < perMille
    }

    /// One SplitMix64 step: advances `state` and returns a well-mixed output.
    @inline(__always)
    package static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix(state)
    }

    /// The SplitMix64 finalizer: a stateless 64-bit hash.
    @inline(__always)
    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A stateless hash of several integers, used to place events (outages, spikes, schedules) independently of
    /// where a run starts.
    package static func hash(_ parts: Int...) -> UInt64 {
        var h: UInt64 = 0x5851_F42D_4C95_7F2D
        for part in parts {
            h = mix(h ^ UInt64(bitPattern: Int64(part)) &+ 0x9E37_79B9_7F4A_7C15)
        }
        return h
    }

    /// A generator seeded from a stateless hash of several integers.
    package init(hashing parts: Int...) {
        var h: UInt64 = 0x5851_F42D_4C95_7F2D
        for part in parts {
            h = Self.mix(h ^ UInt64(bitPattern: Int64(part)) &+ 0x9E37_79B9_7F4A_7C15)
        }
        self.init(seed: h)
    }
}
