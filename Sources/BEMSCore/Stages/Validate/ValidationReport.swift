/// `report.json` of a validate run.
package struct ValidationReport: Codable, Equatable, Sendable {
    package var runID: String
    package var env: String
    /// The rejected-share threshold applied to each file.
    package var threshold: Double
    package var files: [FileReport]

    /// True when every file passed.
    package var passed: Bool { files.allSatisfy(\.passed) }

    /// Sums over all files.
    package var totals: [String: Int] {
        var t: [String: Int] = [:]
        for f in files {
            t["files", default: 0] += 1
            t["bytes", default: 0] += f.bytes
            t["rows", default: 0] += f.rows
            t["readings", default: 0] += f.readings
            t["emptyCells", default: 0] += f.emptyCells
            t["allEmptyRows", default: 0] += f.allEmptyRows
            t["anomalies", default: 0] += f.anomalies
            t["rejectedRecords", default: 0] += f.rejectedRecords
            t["rejectedRows", default: 0] += f.rejectedRows.values.reduce(0, +)
            t["rejectedCells", default: 0] += f.rejectedCells.values.reduce(0, +)
            t["missingMinutes", default: 0] += f.missingMinutes
            t["duplicateTimestamps", default: 0] += f.duplicateTimestamps
            t["failedFiles", default: 0] += f.passed ? 0 : 1
        }
        return t
    }
}
