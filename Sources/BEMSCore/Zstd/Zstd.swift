internal import CZstd

/// A reusable zstd compression context: owns one `ZSTD_CCtx`, freed in `deinit`.
///
/// Reusing one context across many calls (for example all columns of a chunk) avoids re-allocating the
/// compressor's internal tables for every block. A `ZSTD_CCtx` is not thread-safe, so the type is `~Copyable`
/// and not `Sendable`: exactly one value owns the handle.
package struct ZstdCompressor: ~Copyable {
    private let context: OpaquePointer

    /// Allocates a compression context.
    ///
    /// - Throws: ``ZstdError`` when libzstd cannot allocate the context.
    package init() throws(ZstdError) {
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(code: 0, message: "ZSTD_createCCtx failed (out of memory)")
        }
        self.context = context
    }

    deinit {
        ZSTD_freeCCtx(context)
    }

    /// Compresses `bytes` into one zstd frame (with the content size recorded in the frame header).
    ///
    /// - Parameters:
    ///   - bytes: The data to compress; may be empty.
    ///   - level: A zstd compression level, clamped to `ZSTD_minCLevel()...ZSTD_maxCLevel()`.
    /// - Returns: The compressed frame.
    /// - Throws: ``ZstdError`` carrying the libzstd code and `ZSTD_getErrorName`.
    package func compress(_ bytes: [UInt8], level: Int32 = 3) throws(ZstdError) -> [UInt8] {
        try bytes.span.bytes.withUnsafeBytes { (raw) throws(ZstdError) -> [UInt8] in
            try compress(raw, level: level)
        }
    }

    /// Compresses the bytes of a raw buffer into one zstd frame.
    ///
    /// - Parameters:
    ///   - raw: The data to compress; may be empty.
    ///   - level: A zstd compression level, clamped to the supported range.
    /// - Returns: The compressed frame.
    /// - Throws: ``ZstdError``.
    package func compress(_ raw: UnsafeRawBufferPointer, level: Int32 = 3) throws(ZstdError) -> [UInt8] {
        let clamped = min(max(level, ZSTD_minCLevel()), ZSTD_maxCLevel())
        let bound = ZSTD_compressBound(raw.count)
        if ZSTD_isError(bound) != 0 {
            throw ZstdError.from(bound)
        }
        var result = 0
        let output = [UInt8](unsafeUninitializedCapacity: max(bound, 1)) { buffer, initialized in
            result = ZSTD_compressCCtx(
                context, buffer.baseAddress, buffer.count, raw.baseAddress, raw.count,
                clamped)
            initialized = ZSTD_isError(result) != 0 ? 0 : result
        }
        if ZSTD_isError(result) != 0 {
            throw ZstdError.from(result)
        }
        return output
    }
}

/// A reusable zstd decompression context: owns one `ZSTD_DCtx`, freed in `deinit`.
///
/// The decompressor never trusts a size taken from a file: the caller states the size it expects, the wrapper
/// refuses sizes above a cap before allocating, and the decoded size must match exactly.
package struct ZstdDecompressor: ~Copyable {
    private let context: OpaquePointer

    /// The default cap on one decompressed block: 1 GiB.
    package static let defaultMaxSize = 1 << 30

    /// Allocates a decompression context.
    ///
    /// - Throws: ``ZstdError`` when libzstd cannot allocate the context.
    package init() throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(code: 0, message: "ZSTD_createDCtx failed (out of memory)")
        }
        self.context = context
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decompresses one or more zstd frames whose total decoded size must be exactly `expectedSize`.
    ///
    /// - Parameters:
    ///   - bytes: The compressed frames.
    ///   - expectedSize: The exact decoded size; the output buffer is allocated with this capacity, so a frame
    ///     that decodes to more bytes fails with "Destination buffer is too small" instead of growing memory.
    ///   - maxSize: A cap on `expectedSize`, checked before anything is allocated.
    /// - Returns: The decoded bytes.
    /// - Throws: ``ZstdError`` when the frame is corrupt, the size differs, or `expectedSize` exceeds `maxSize`.
    package func decompress(
        _ bytes: [UInt8], expectedSize: Int, maxSize: Int = ZstdDecompressor.defaultMaxSize
    ) throws(ZstdError) -> [UInt8] {
        try bytes.span.bytes.withUnsafeBytes { (raw) throws(ZstdError) -> [UInt8] in
            try decompress(raw, expectedSize: expectedSize, maxSize: maxSize)
        }
    }

    /// Decompresses a raw buffer of zstd frames whose decoded size must be exactly `expectedSize`.
    ///
    /// - Parameters:
    ///   - raw: The compressed frames.
    ///   - expectedSize: The exact decoded size.
    ///   - maxSize: A cap on `expectedSize`, checked before anything is allocated.
    /// - Returns: The decoded bytes.
    /// - Throws: ``ZstdError``.
    package func decompress(
        _ raw: UnsafeRawBufferPointer, expectedSize: Int, maxSize: Int = ZstdDecompressor.defaultMaxSize
    ) throws(ZstdError) -> [UInt8] {
        guard expectedSize >= 0, expectedSize <= maxSize else {
            throw ZstdError(code: 0, message: "expected size \(expectedSize) outside 0...\(maxSize)")
        }
        if raw.count > 0 {
            // A frame that records its content size must agree with the caller before we allocate.
            let declared = ZSTD_getFrameContentSize(raw.baseAddress, raw.count)
            if declared == ZSTD_CONTENTSIZE_ERROR {
                throw ZstdError(code: 0, message: "not a zstd frame")
            }
            if declared != ZSTD_CONTENTSIZE_UNKNOWN, declared > UInt64(expectedSize) {
                throw ZstdError(code: 0, message: "frame declares \(declared) bytes, expected \(expectedSize)")
            }
        }
        var result = 0
        let output = [UInt8](unsafeUninitializedCapacity: max(expectedSize, 1)) { buffer, initialized in
            result = ZSTD_decompressDCtx(context, buffer.baseAddress, expectedSize, raw.baseAddress, raw.count)
            initialized = ZSTD_isError(result) != 0 ? 0 : min(result, expectedSize)
        }
        if ZSTD_isError(result) != 0 {
            throw ZstdError.from(result)
        }
        guard result == expectedSize else {
            throw ZstdError(code: 0, message: "decoded \(result) bytes, expected \(expectedSize)")
        }
        return output
    }
}

/// One-shot helpers that allocate a context per call; prefer ``ZstdCompressor``/``ZstdDecompressor`` in loops.
package enum Zstd {
    /// The libzstd version number, for example `10504` for 1.5.4.
    package static var versionNumber: Int { Int(ZSTD_versionNumber()) }

    /// Compresses `bytes` with a fresh context.
    ///
    /// - Throws: ``ZstdError``.
    package static func compress(_ bytes: [UInt8], level: Int32 = 3) throws(ZstdError) -> [UInt8] {
        let compressor = try ZstdCompressor()
        return try compressor.compress(bytes, level: level)
    }

    /// Decompresses `bytes`, which must decode to exactly `expectedSize` bytes (at most `maxSize`).
    ///
    /// - Throws: ``ZstdError``.
    package static func decompress(
        _ bytes: [UInt8], expectedSize: Int, maxSize: Int = ZstdDecompressor.defaultMaxSize
    ) throws(ZstdError) -> [UInt8] {
        let decompressor = try ZstdDecompressor()
        return try decompressor.decompress(bytes, expectedSize: expectedSize, maxSize: maxSize)
    }
}

extension ZstdError {
    /// Builds an error from a libzstd result code, copying `ZSTD_getErrorName` into a `String`.
    static func from(_ code: Int) -> ZstdError {
        ZstdError(code: code, message: String(cString: ZSTD_getErrorName(code)))
    }
}
