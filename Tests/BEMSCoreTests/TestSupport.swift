import Foundation

@testable import BEMSCore

/// A temporary folder removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "bems-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes bytes to a file inside the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        try? FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String { write(name, Array(text.utf8)) }
}

/// Builds CU-BEMS-shaped CSV text.
enum CSV {
    static func header(floor: Int) -> String { FloorSchema.header(floor: floor)!.joined(separator: ",") }

    /// `minutes` rows starting at `start` (local `YYYY-MM-DD HH:MM:SS`), every cell from `cell(row, column)`.
    static func file(floor: Int, start: String = "2019-03-04 00:00:00", minutes: Int, cell: (Int, Int) -> String)
        -> String
    {
        let columns = FloorSchema.dataColumns(floor: floor)!.count
        let base = try! TimestampParser.parse(start)
        var lines = [header(floor: floor)]
        for r in 0..<minutes {
            let ts = TimestampParser.format(localSeconds: base + Int64(r * 60))
            lines.append(([ts] + (0..<columns).map { cell(r, $0) }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension PipelineConfig {
    /// Defaults with the work dir inside a temporary folder.
    static func testing(_ dir: TemporaryDirectory) -> PipelineConfig {
        var config = PipelineConfig()
        config.workDir = dir.path + "/work"
        config.sources = [.init(path: dir.path + "/in", floor: nil)]
        return config
    }
}
