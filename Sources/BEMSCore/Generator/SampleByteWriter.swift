#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A reusable block buffer that the generator fills row by row and hands to a file or to memory in ~1 MiB blocks.
///
/// Memory stays constant for a file of any size: one block plus room for one row.
final class SampleByteWriter {
    /// Where full blocks go.
    enum Destination {
        /// A POSIX file descriptor owned by the writer.
        case file(fd: Int32, path: String)
        /// An in-memory array, for tests and benchmarks.
        case memory
    }

    /// The flush threshold.
    static let blockSize = 1 << 20
    /// Extra room after the threshold, so a row never has to be split.
    static let slack = 64 << 10

    private let storage: UnsafeMutablePointer<UInt8>
    /// Bytes currently in the block.
    private(set) var count = 0
    /// Bytes handed on so far (flushed blocks).
    private(set) var flushed = 0
    private var destination: Destination
    /// The collected bytes for ``Destination/memory``.
    private(set) var memory: [UInt8] = []

    /// Opens `path` for writing (created or truncated, mode 0644) or prepares an in-memory writer.
    init(destination: Destination) {
        storage = .allocate(capacity: Self.blockSize + Self.slack)
        self.destination = destination
    }

    /// Creates a writer on a new file.
    ///
    /// - Throws: ``SampleGeneratorError/io(path:operation:errno:)`` when `open` fails.
    static func file(path: String) throws(SampleGeneratorError) -> SampleByteWriter {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .io(path: path, operation: "create", errno: errno) }
        return SampleByteWriter(destination: .file(fd: fd, path: path))
    }

    deinit {
        if case .file(let fd, _) = destination { _ = close(fd) }
        storage.deallocate()
    }

    /// Total bytes written so far, buffered or not.
    var totalBytes: Int { flushed + count }

    /// Makes sure `bytes` more bytes fit without reallocating, flushing the block first if it is over the threshold.
    @inline(__always)
    func reserve(_ bytes: Int) throws(SampleGeneratorError) {
        if count + bytes > Self.blockSize {
            try flush()
            precondition(bytes <= Self.blockSize + Self.slack, "row larger than the block buffer")
        }
    }

    /// The write position; valid until the next ``reserve(_:)`` or ``flush()``. Callers advance ``commit(_:)``.
    @inline(__always)
    var cursor: UnsafeMutablePointer<UInt8> { storage + count }

    /// Marks `n` bytes after ``cursor`` as written.
    @inline(__always)
    func commit(_ n: Int) { count += n }

    /// Appends a byte array (headers, line endings).
    func append(_ bytes: [UInt8]) throws(SampleGeneratorError) {
        try reserve(bytes.count)
        bytes.withUnsafeBufferPointer { src in
            (storage + count).update(from: src.baseAddress!, count: src.count)
        }
        count += bytes.count
    }

    /// Hands the buffered bytes to the destination.
    func flush() throws(SampleGeneratorError) {
        guard count > 0 else { return }
        switch destination {
        case .memory:
            memory.append(contentsOf: UnsafeBufferPointer(start: storage, count: count))
        case .file(let fd, let path):
            var offset = 0
            while offset < count {
                let n = write(fd, storage + offset, count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io(path: path, operation: "write", errno: errno)
                }
                offset += n
            }
        }
        flushed += count
        count = 0
    }

    /// Flushes and closes the file.
    func finish() throws(SampleGeneratorError) {
        try flush()
        if case .file(let fd, let path) = destination {
            destination = .memory
            if close(fd) != 0 { throw .io(path: path, operation: "close", errno: errno) }
        }
    }
}
