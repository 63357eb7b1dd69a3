#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads and atomically writes chunk files.
package enum ChunkFile {
    /// The default cap on the size of a chunk file read into memory: 2 GiB.
    package static let defaultMaxSize = 1 << 31

    /// Writes `bytes` to `path` atomically: readers see either the old file or the complete new one.
    ///
    /// Delegates to ``AtomicFile/write(_:to:durable:)`` (temporary file in the same directory, rename over `path`).
    ///
    /// - Parameters:
    ///   - bytes: The complete file content.
    ///   - path: The destination; its directory must exist.
    ///   - durable: `fsync` the file and its directory before returning. Stages that write many chunks pass
    ///     `false` and call ``AtomicFile/syncFileSystem(containing:)`` once before publishing their manifest.
    /// - Throws: ``ChunkError`` with code ``ChunkError/Code/io`` naming the failing call and `strerror`.
    package static func write(_ bytes: [UInt8], to path: String, durable: Bool = true) throws(ChunkError) {
        do {
            try AtomicFile.write(bytes, to: path, durable: durable)
        } catch {
            throw ChunkError(.io, error.description)
        }
    }

    /// Reads a whole chunk file.
    ///
    /// - Parameters:
    ///   - path: The file to read.
    ///   - maxSize: Files larger than this are refused before any allocation.
    /// - Returns: The file's bytes.
    /// - Throws: ``ChunkError`` with ``ChunkError/Code/fileNotFound`` or ``ChunkError/Code/io``.
    package static func read(_ path: String, maxSize: Int = ChunkFile.defaultMaxSize) throws(ChunkError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw ChunkError(.fileNotFound, "\(path): no such file") }
            throw ioError("open", path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ioError("fstat", path) }
        let size = Int(info.st_size)
        guard size >= 0, size <= maxSize else {
            throw ChunkError(.io, "\(path): \(size) bytes exceeds the limit of \(maxSize)")
        }
        var readError: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, initialized in
            var offset = 0
            while offset < size {
                let result = systemRead(fd, buffer.baseAddress! + offset, size - offset)
                if result < 0 {
                    if errno == EINTR { continue }
                    readError = errno
                    break
                }
                if result == 0 { break }
                offset += result
            }
            initialized = offset
        }
        if readError != 0 {
            throw ChunkError(.io, "read \(path): \(String(cString: strerror(readError)))")
        }
        guard bytes.count == size else {
            throw ChunkError(.io, "\(path): read \(bytes.count) of \(size) bytes (file changed while reading)")
        }
        return bytes
    }

    private static func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
            Glibc.read(fd, buffer, count)
        #elseif canImport(Musl)
            Musl.read(fd, buffer, count)
        #else
            Darwin.read(fd, buffer, count)
        #endif
    }

    private static func ioError(_ call: String, _ path: String) -> ChunkError {
        let code = errno
        return ChunkError(.io, "\(call) \(path): \(String(cString: strerror(code)))")
    }
}
