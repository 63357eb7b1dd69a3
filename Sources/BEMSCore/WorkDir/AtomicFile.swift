import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes files so that a reader sees either the old content or the new content, never a part.
///
/// The bytes go to a temporary file in the same folder, are flushed with `fsync`, and the file is renamed over the
/// target; the folder is then synced so the rename survives a power cut.
package enum AtomicFile {
    /// Writes `bytes` to `path` atomically.
    ///
    /// - Throws: ``PipelineError`` (exit 74) naming the path and the system error, e.g. a full or read-only disk. No
    ///   partial file is left behind.
    package static func write(_ bytes: some Collection<UInt8>, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temp = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("cannot create", temp) }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            let array = Array(bytes)
            try array.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw ioError("cannot write", path)
                    }
                    offset += n
                }
            }
            guard fsync(fd) == 0 else { throw ioError("cannot flush", path) }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw ioError("cannot close", path) }
        guard rename(temp, path) == 0 else { throw ioError("cannot rename into", path) }
        ok = true
        syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Writes an `Encodable` value as pretty, key-sorted JSON, atomically.
    package static func writeJSON(_ value: some Encodable, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0A)
        try write(data, to: path)
    }

    /// Reads and decodes a JSON file.
    package static func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PipelineError.noInput("\(path): not found")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw PipelineError.io("\(path): unreadable (\(error))")
        }
    }

    /// Creates a folder and its parents.
    package static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PipelineError.io("\(path): cannot create folder (\(reason(error)))")
        }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    static func ioError(_ what: String, _ path: String) -> PipelineError {
        PipelineError.io("\(path): \(what) (\(String(cString: strerror(errno))))")
    }

    static func reason(_ error: any Error) -> String {
        if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError {
            return String(cString: strerror(Int32(posix.code)))
        }
        return (error as NSError).localizedDescription
    }
}
