import Foundation

/// Remembers the SHA-256 of input files by path, size and modification time, so an up-to-date check doesn't reread
/// 700 MB of CSV. Like make, it trusts the file system's mtime; `--force` bypasses it.
package struct InputHashCache {
    private struct Entry: Codable {
        var bytes: Int
        var mtimeNanoseconds: Int64
        var sha256: String
    }

    private let path: String
    private var entries: [String: Entry]

    package init(workDir: WorkDir) {
        path = workDir.root + "/input-hashes.json"
        entries =
            (try? JSONDecoder().decode([String: Entry].self, from: Data(contentsOf: URL(fileURLWithPath: path)))) ?? [:]
    }

    /// The cached hash when the file's size and mtime are unchanged.
    package func cached(_ file: String) -> String? {
        guard let (bytes, mtime) = Self.stat(file), let entry = entries[Self.key(file)],
            entry.bytes == bytes, entry.mtimeNanoseconds == mtime
        else { return nil }
        return entry.sha256
    }

    /// The file's hash, from the cache or by reading it.
    package mutating func sha256(_ file: String) throws -> (hex: String, bytes: Int) {
        if let hit = cached(file), let (bytes, _) = Self.stat(file) { return (hit, bytes) }
        let result = try Digest.sha256(file: file)
        record(file, sha256: result.hex)
        return result
    }

    /// Stores a hash computed elsewhere (validate hashes while it parses).
    package mutating func record(_ file: String, sha256: String) {
        guard let (bytes, mtime) = Self.stat(file) else { return }
        entries[Self.key(file)] = Entry(bytes: bytes, mtimeNanoseconds: mtime, sha256: sha256)
    }

    /// Writes the cache back (best effort: the cache only saves time).
    package func save() {
        try? AtomicFile.writeJSON(entries, to: path)
    }

    private static func key(_ file: String) -> String {
        URL(fileURLWithPath: file).standardizedFileURL.path
    }

    private static func stat(_ file: String) -> (Int, Int64)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
            let size = attributes[.size] as? Int, let date = attributes[.modificationDate] as? Date
        else { return nil }
        return (size, Int64((date.timeIntervalSince1970 * 1e9).rounded()))
    }
}
