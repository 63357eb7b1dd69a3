import Crypto
import Foundation

/// The work directory: one folder per stage, one folder per run, and a `CURRENT` pointer per stage.
///
/// ```
/// work/
///   .lock                       flock held by the running stage
///   input-hashes.json           SHA-256 cache of inputs, keyed by path, size and mtime
///   validate/CURRENT            run id of the current validate run
///   validate/runs/<run>/        manifest.json, report.json, dead-letter.jsonl
///   normalize/runs/<run>/       manifest.json, chunks/*.bemc
///   normalize/ROLLED_BACK       run ids taken back by `bems rollback`
/// ```
package struct WorkDir: Sendable {
    package let root: String

    package init(root: String) {
        self.root = root
    }

    package func stageDirectory(_ stage: Stage) -> String { "\(root)/\(stage.rawValue)" }
    package func runDirectory(_ stage: Stage, _ runID: String) -> String { "\(stageDirectory(stage))/runs/\(runID)" }
    package func manifestPath(_ stage: Stage, _ runID: String) -> String {
        runDirectory(stage, runID) + "/manifest.json"
    }

    /// The run id `<stage>/CURRENT` names, or `nil` when the stage never ran (or was rolled back to nothing).
    package func currentRunID(_ stage: Stage) -> String? {
        guard let data = FileManager.default.contents(atPath: stageDirectory(stage) + "/CURRENT") else { return nil }
        let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }

    /// The manifest of the current run.
    package func currentManifest(_ stage: Stage) throws -> StageManifest? {
        guard let id = currentRunID(stage) else { return nil }
        return try manifest(stage, id)
    }

    package func manifest(_ stage: Stage, _ runID: String) throws -> StageManifest {
        try AtomicFile.readJSON(StageManifest.self, from: manifestPath(stage, runID))
    }

    /// All run ids of a stage, oldest first (run ids sort by time).
    package func runIDs(_ stage: Stage) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stageDirectory(stage) + "/runs")) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Makes `runID` current (or clears the pointer), atomically.
    package func setCurrent(_ stage: Stage, _ runID: String?) throws {
        try AtomicFile.makeDirectory(stageDirectory(stage))
        try AtomicFile.write(Array(((runID ?? "") + "\n").utf8), to: stageDirectory(stage) + "/CURRENT")
    }

    /// Publishes a finished run: writes its manifest, then points `CURRENT` at it. A crash between the two leaves the
    /// earlier run current and the new folder unused.
    package func publish(_ manifest: StageManifest) throws {
        try AtomicFile.writeJSON(manifest, to: manifestPath(manifest.stage, manifest.runID))
        try setCurrent(manifest.stage, manifest.runID)
    }

    /// Creates the folder of a new run and returns its id: UTC time plus a random suffix, so ids sort by time.
    package func createRun(_ stage: Stage, now: Date = Date()) throws -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let id = formatter.string(from: now) + "-" + String(UInt32.random(in: 0...0xFFFF), radix: 16)
        try AtomicFile.makeDirectory(runDirectory(stage, id))
        return id
    }

    /// Removes the folder of a run that failed before it was published (best effort): nothing in it is used, and a
    /// full disk gets its space back for the rerun.
    package func discardRun(_ stage: Stage, _ runID: String) {
        guard currentRunID(stage) != runID else { return }
        try? FileManager.default.removeItem(atPath: runDirectory(stage, runID))
    }

    /// Takes back the current run of a stage: `CURRENT` returns to the run before it, and the run id is recorded in
    /// `<stage>/ROLLED_BACK`. The run's folder stays for inspection.
    ///
    /// - Returns: The rolled-back run id and the run now current (or `nil`).
    package func rollback(_ stage: Stage) throws -> (rolledBack: String, current: String?) {
        guard let current = try currentManifest(stage) else {
            throw PipelineError.noInput("\(stage.rawValue) has no current run to roll back")
        }
        var target = current.previousRunID
        let rolled = rolledBackRunIDs(stage).union([current.runID])
        // Skip runs that were themselves rolled back earlier.
        while let t = target, rolled.contains(t) {
            target = (try? manifest(stage, t))?.previousRunID
        }
        var log = rolledBackRunIDs(stage)
        log.insert(current.runID)
        try AtomicFile.write(
            Array((log.sorted().joined(separator: "\n") + "\n").utf8), to: stageDirectory(stage) + "/ROLLED_BACK")
        try setCurrent(stage, target)
        return (current.runID, target)
    }

    /// Marks a run as unusable: a later stage refused it (a chunk failed its SHA-256 check or is missing, or the
    /// database changed since dedupe's snapshot). Its stage's next run then does the work again instead of
    /// reporting `up to date`, so a plain rerun (`make load`) repairs it. Written as `runs/<run>/STALE` with the
    /// reason.
    package func markStale(_ stage: Stage, _ runID: String, reason: String) throws {
        try AtomicFile.write(Array((reason + "\n").utf8), to: runDirectory(stage, runID) + "/STALE")
    }

    /// Why a later stage refused the run (see ``markStale(_:_:reason:)``), or `nil` when it did not.
    package func staleReason(_ stage: Stage, _ runID: String) -> String? {
        guard let data = FileManager.default.contents(atPath: runDirectory(stage, runID) + "/STALE") else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Run ids that `bems rollback` took back.
    package func rolledBackRunIDs(_ stage: Stage) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: stageDirectory(stage) + "/ROLLED_BACK") else { return [] }
        return Set(String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init))
    }
}

/// SHA-256 helpers.
package enum Digest {
    /// Lowercase hex SHA-256 of bytes.
    package static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        var hasher = SHA256()
        let array = Array(bytes)
        array.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hex(hasher.finalize())
    }

    /// Lowercase hex of bytes.
    package static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 of a file, streamed in 1 MiB blocks.
    package static func sha256(file path: String) throws -> (hex: String, bytes: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw PipelineError.noInput("\(path): cannot open")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var total = 0
        while true {
            let data = try handle.read(upToCount: 1 << 20) ?? Data()
            if data.isEmpty { break }
            total += data.count
            data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        return (hex(hasher.finalize()), total)
    }
}
