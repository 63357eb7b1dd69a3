import Foundation

/// A CSV input with the floor it belongs to.
package struct InputFile: Sendable, Equatable, Codable, Hashable {
    /// Path as given (relative to the current directory or absolute).
    package var path: String
    /// Floor number, from the file name `<year>Floor<n>.csv` or from the source list.
    package var floor: Int

    /// The file name without folders, used in diagnostics and chunk metadata.
    package var name: String { (path as NSString).lastPathComponent }

    package init(path: String, floor: Int) {
        self.path = path
        self.floor = floor
    }

    /// The size of the file at `path` in bytes; 0 when it can't be read (the scan reports why).
    package static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// The floor encoded in a CU-BEMS file name such as `2019Floor6.csv` (case-insensitive), or `nil`.
    package static func floor(fromFileName name: String) -> Int? {
        let lower = name.lowercased()
        guard lower.hasSuffix(".csv"), let range = lower.range(of: "floor") else { return nil }
        let digits = lower[range.upperBound...].dropLast(4)
        guard !digits.isEmpty, digits.count <= 2, digits.allSatisfy(\.isASCII), let n = Int(digits), n >= 1 else {
            return nil
        }
        return n
    }

    /// Expands sources (files or folders) into input files, sorted by path so later sources win consistently.
    ///
    /// - Parameters:
    ///   - sources: Configured sources, or the command-line paths (which override them).
    /// - Throws: ``PipelineError`` 66 for a missing path, 65 when a file's floor can't be told.
    package static func resolve(_ sources: [PipelineConfig.Source]) throws -> [InputFile] {
        var files: [InputFile] = []
        let fm = FileManager.default
        for source in sources {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
                throw PipelineError.noInput("\(source.path): no such file or folder")
            }
            var paths: [String]
            if isDirectory.boolValue {
                let names = try fm.contentsOfDirectory(atPath: source.path)
                paths = names.filter { $0.lowercased().hasSuffix(".csv") }.sorted()
                    .map { (source.path as NSString).appendingPathComponent($0) }
                if paths.isEmpty { throw PipelineError.noInput("\(source.path): no .csv files in this folder") }
            } else {
                paths = [source.path]
            }
            for path in paths {
                let name = (path as NSString).lastPathComponent
                guard let floor = source.floor ?? InputFile.floor(fromFileName: name) else {
                    throw PipelineError.data(
                        "\(path): cannot tell the floor: name the file <year>Floor<n>.csv or give \"floor\" in sources")
                }
                guard FloorSchema.dataColumns(floor: floor) != nil else {
                    throw PipelineError.data("\(path): floor \(floor) is not a floor of the building (1–7)")
                }
                files.append(InputFile(path: path, floor: floor))
            }
        }
        var seen = Set<String>()
        return files.filter { seen.insert(($0.path as NSString).standardizingPath).inserted }
    }
}
