import BEMSCore
import Foundation

/// The human summary validate prints on stderr.
package enum ValidateSummary {
    package static func render(_ result: ValidateStage.Result) -> String {
        var lines: [String] = []
        for d in result.diagnostics { lines.append(d.description) }
        let shown = result.diagnostics.count
        let total = result.report.totals["rejectedRows", default: 0] + result.report.totals["rejectedCells", default: 0]
        if !result.upToDate, total > shown {
            lines.append("… \(total - shown) more in \(result.runDirectory)/dead-letter.jsonl")
        }
        if result.upToDate {
            lines.append("validate: up to date (run \(result.manifest.runID)); use --force to rerun")
        }
        lines.append(
            Table.render(
                header: [
                    "file", "rows", "readings", "empty", "all-empty", "anomalies", "rejected", "share", "missing min",
                    "dup ts", "ok",
                ],
                rows: result.report.files.map { f in
                    [
                        f.file, "\(f.rows)", "\(f.readings)", "\(f.emptyCells)", "\(f.allEmptyRows)", "\(f.anomalies)",
                        "\(f.rejectedRecords)", String(format: "%.4f%%", f.rejectedShare * 100), "\(f.missingMinutes)",
                        "\(f.duplicateTimestamps)", f.passed ? "yes" : (f.headerError != nil ? "HEADER" : "NO"),
                    ]
                }))
        let t = result.report.totals
        lines.append(
            "validate: \(t["files", default: 0]) files, \(t["rows", default: 0]) rows, \(t["readings", default: 0]) readings, "
                + "\(t["rejectedRecords", default: 0]) rejected records, threshold \(result.report.threshold * 100)% per file: "
                + (result.report.passed ? "PASSED" : "FAILED") + " (report: \(result.runDirectory)/report.json)")
        return lines.joined(separator: "\n")
    }
}

/// Plain text tables for terminal output.
package enum Table {
    package static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
