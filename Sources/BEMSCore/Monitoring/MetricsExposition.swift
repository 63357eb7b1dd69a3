import Foundation

/// Joins Prometheus text-format expositions into one valid exposition (`GET /metrics` of `bems serve`: the server's
/// own counters plus the stages' `bems_<stage>.prom` textfiles).
///
/// Plain concatenation is not valid: every stage's file declares the same families (`# TYPE bems_run_success gauge`
/// …), and the format allows one `HELP` and one `TYPE` per family with all its samples together. So the texts are
/// read family by family and written again with each family once, its samples from every text in order.
/// - A family whose `TYPE` differs from the one seen first is left out of the later text (its samples would be
///   misread).
/// - A series (name and labels) already written is left out again: the first text wins.
/// - Comments other than `HELP` and `TYPE`, blank lines and lines that are not samples are dropped.
package enum MetricsExposition {
    /// One family: its name, `HELP` text, type, and sample lines.
    struct Family {
        var name: String
        var help: String?
        var type: String?
        var samples: [String] = []
        var seriesKeys = Set<String>()
    }

    /// Merges `texts` (each in the text exposition format, version 0.0.4).
    package static func merge(_ texts: [String]) -> String {
        var order: [String] = []
        var families: [String: Family] = [:]
        for text in texts {
            var types: [String: String] = [:]
            var helps: [String: String] = [:]
            var rejected = Set<String>()
            for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
                let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
                if line.hasPrefix("#") {
                    let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                    guard parts.count >= 3, parts[0] == "#" else { continue }
                    let name = String(parts[2])
                    let rest = parts.count == 4 ? String(parts[3]) : ""
                    if parts[1] == "TYPE" { types[name] = rest } else if parts[1] == "HELP" { helps[name] = rest }
                    continue
                }
                guard let series = seriesKey(line), let sampleName = series.split(separator: "{").first else {
                    continue
                }
                let familyName = family(of: String(sampleName), types: types)
                if rejected.contains(familyName) { continue }
                var family = families[familyName] ?? Family(name: familyName)
                let type = types[familyName] ?? "untyped"
                if let known = family.type, known != type {
                    rejected.insert(familyName)
                    continue
                }
                if families[familyName] == nil { order.append(familyName) }
                family.type = type
                if family.help == nil { family.help = helps[familyName] }
                guard family.seriesKeys.insert(series).inserted else {
                    families[familyName] = family
                    continue
                }
                family.samples.append(String(line))
                families[familyName] = family
            }
        }
        var out = ""
        for name in order {
            guard let family = families[name], !family.samples.isEmpty else { continue }
            if let help = family.help { out += "# HELP \(name) \(help)\n" }
            if let type = family.type, type != "untyped" { out += "# TYPE \(name) \(type)\n" }
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }

    /// The exposition files of a folder: every `*.prom` file (not the `*.prom.<pid>` files being written), by name.
    package static func textfiles(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".prom") && !$0.hasPrefix(".") }.sorted().compactMap { name in
            try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)
        }
    }

    /// The family a sample belongs to: `x_bucket`, `x_sum` and `x_count` belong to `x` when `x` is a histogram or
    /// summary.
    static func family(of sample: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
            let base = String(sample.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return sample
    }

    /// The series of a sample line: its name and label set as written (`name{a="1"}`), or `nil` when the line is not
    /// a sample. Label values may hold spaces, `}` and escaped quotes.
    static func seriesKey(_ line: Substring) -> String? {
        var index = line.startIndex
        while index < line.endIndex, line[index] != "{", line[index] != " ", line[index] != "\t" {
            index = line.index(after: index)
        }
        guard index > line.startIndex, index < line.endIndex else { return nil }
        if line[index] == "{" {
            var inQuotes = false
            var escaped = false
            var end: Substring.Index?
            var i = line.index(after: index)
            while i < line.endIndex {
                let c = line[i]
                if escaped {
                    escaped = false
                } else if c == "\\" {
                    escaped = inQuotes
                } else if c == "\"" {
                    inQuotes.toggle()
                } else if c == "}", !inQuotes {
                    end = i
                    break
                }
                i = line.index(after: i)
            }
            guard let end else { return nil }
            index = line.index(after: end)
        }
        let name = line[..<(line[..<index].firstIndex(of: "{") ?? index)]
        guard isMetricName(name) else { return nil }
        let rest = line[index...].split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard rest.count == 1 || rest.count == 2, isValue(rest[0]), rest.count == 1 || Int64(rest[1]) != nil else {
            return nil
        }
        return String(line[..<index])
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    static func isMetricName(_ s: Substring) -> Bool {
        guard let first = s.utf8.first, !(first >= 48 && first <= 57) else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 95 || b == 58
        }
    }

    /// A sample value: a decimal or exponent number, `NaN`, `+Inf` or `-Inf`.
    static func isValue(_ s: Substring) -> Bool {
        if s == "NaN" || s == "+Inf" || s == "-Inf" { return true }
        return s.allSatisfy { "0123456789+-.eE".contains($0) } && Double(s) != nil
    }
}
