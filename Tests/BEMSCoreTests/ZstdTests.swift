import Testing

@testable import BEMSCore

@Suite struct ZstdTests {
    /// Deterministic pseudo-random bytes with some repetition, so zstd has something to find.
    static func sample(_ count: Int) -> [UInt8] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes.append(i % 7 == 0 ? UInt8(truncatingIfNeeded: state >> 59) : UInt8(truncatingIfNeeded: i / 64))
        }
        return bytes
    }

    @Test(arguments: [0, 1, 2, 1000, 1 << 20])
    func roundTripRestoresTheBytes(size: Int) throws {
        let input = Self.sample(size)
        let compressor = try ZstdCompressor()
        let decompressor = try ZstdDecompressor()
        let compressed = try compressor.compress(input, level: 3)
        let output = try decompressor.decompress(compressed, expectedSize: size)
        #expect(output == input)
        // The one-shot helpers agree with the reusable contexts.
        #expect(try Zstd.decompress(Zstd.compress(input), expectedSize: size) == input)
    }

    @Test func contextsAreReusableAcrossCalls() throws {
        let compressor = try ZstdCompressor()
        let decompressor = try ZstdDecompressor()
        for size in [10, 100_000, 0, 5000] {
            let input = Self.sample(size)
            let compressed = try compressor.compress(input, level: Int32(size % 5 + 1))
            #expect(try decompressor.decompress(compressed, expectedSize: size) == input)
        }
    }

    @Test func corruptFrameThrowsWithZstdErrorName() throws {
        var compressed = try Zstd.compress(Self.sample(100_000))
        for i in stride(from: 20, to: compressed.count, by: 3) { compressed[i] ^= 0x5A }
        let error = #expect(throws: ZstdError.self) {
            _ = try Zstd.decompress(compressed, expectedSize: 100_000)
        }
        #expect(error?.message.isEmpty == false)
    }

    @Test func garbageIsNotAFrame() {
        #expect(throws: ZstdError.self) {
            _ = try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8, 9], expectedSize: 9)
        }
    }

    @Test func wrongExpectedSizeIsAnError() throws {
        let compressed = try Zstd.compress(Self.sample(1000))
        #expect(throws: ZstdError.self) { _ = try Zstd.decompress(compressed, expectedSize: 999) }
        #expect(throws: ZstdError.self) { _ = try Zstd.decompress(compressed, expectedSize: 1001) }
    }

    @Test func sizeAboveTheCapIsRefusedBeforeAllocating() throws {
        let compressed = try Zstd.compress(Self.sample(1000))
        let error = #expect(throws: ZstdError.self) {
            _ = try Zstd.decompress(compressed, expectedSize: 1000, maxSize: 999)
        }
        #expect(error?.code == 0)
        #expect(throws: ZstdError.self) { _ = try Zstd.decompress(compressed, expectedSize: -1) }
    }

    @Test func zstdCodeCarriesTheLibraryCode() throws {
        let compressed = try Zstd.compress(Self.sample(1000))
        // Claiming 0 bytes when the frame records 1000 is caught before decoding; a frame without content size
        // that overflows the buffer reports libzstd's own code.
        let truncated = Array(compressed.prefix(compressed.count - 3))
        let error = #expect(throws: ZstdError.self) { _ = try Zstd.decompress(truncated, expectedSize: 1000) }
        #expect(error.map { $0.code != 0 } == true)
    }
}
