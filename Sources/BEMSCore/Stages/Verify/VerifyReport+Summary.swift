extension VerifyReport {
    /// A human summary: one line, then one line per mismatch (at most `limit`).
    package func summary(limit: Int = 50) -> String {
        var lines = [
            "verify \(passed ? "passed" : "FAILED"): \(chunksChecked) chunks, \(sensorDaysChecked) sensor-days checked, "
                + "\(mismatches.count) mismatches"
        ]
        for m in mismatches.prefix(limit) {
            let place = [m.chunk, m.sensorID, m.day].compactMap { $0 }.joined(separator: " ")
            lines.append("  \(m.kind) \(place): expected \(m.expected), found \(m.actual)")
        }
        if mismatches.count > limit { lines.append("  … \(mismatches.count - limit) more in verify.json") }
        return lines.joined(separator: "\n")
    }
}
