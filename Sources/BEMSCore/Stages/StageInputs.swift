import Foundation

/// Inputs of the parsing stages (validate, normalize) with their hashes.
package struct HashedInput: Sendable, Equatable {
    package var file: InputFile
    package var sha256: String
    package var bytes: Int
}

extension HashedInput {
    /// Resolves command-line inputs (or the configured sources) and hashes them through the work dir's cache.
    package static func resolve(arguments: [String], config: PipelineConfig, workDir: WorkDir) throws -> [HashedInput] {
        let files = try InputFile.resolve(arguments: arguments, config: config)
        var cache = InputHashCache(workDir: workDir)
        defer { cache.save() }
        return try files.map { file in
            let (hex, bytes) = try cache.sha256(file.path)
            return HashedInput(file: file, sha256: hex, bytes: bytes)
        }
    }

    /// The fingerprint line of one input.
    package var fingerprintLine: String { "\(file.path)|\(file.floor)|\(sha256)" }
}

extension InputFile {
    /// The inputs of a parsing stage: the command-line paths when given, else the configured sources.
    package static func resolve(arguments: [String], config: PipelineConfig) throws -> [InputFile] {
        try resolve(arguments.isEmpty ? config.sources : arguments.map { PipelineConfig.Source(path: $0, floor: nil) })
    }
}

/// Runs `work` over `count` items on up to one task per core, returning the results in item order.
package func parallelMap<T: Sendable>(
    count: Int, width: Int = 0, _ work: @escaping @Sendable (Int) throws -> T
) async throws -> [T] {
    let limit = max(1, min(width > 0 ? width : ProcessInfoCores.count, count))
    return try await withThrowingTaskGroup(of: (Int, T).self) { group in
        var results = [T?](repeating: nil, count: count)
        var next = 0
        while next < limit {
            let i = next
            group.addTask { (i, try work(i)) }
            next += 1
        }
        for try await (index, value) in group {
            results[index] = value
            if next < count {
                let i = next
                group.addTask { (i, try work(i)) }
                next += 1
            }
        }
        return results.map { $0! }
    }
}

/// The number of cores to use for file-level parallelism.
package enum ProcessInfoCores {
    package static var count: Int { ProcessInfo.processInfo.activeProcessorCount }
}
