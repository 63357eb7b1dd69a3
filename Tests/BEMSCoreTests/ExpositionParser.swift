import Foundation

/// A strict parser of the Prometheus text exposition format (version 0.0.4), written for the tests from the format's
/// specification: it rejects what Prometheus' own parser rejects and a few things it tolerates but we never want
/// (duplicate series, interleaved families, a missing final newline, inconsistent histograms).
struct ExpositionParser {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Family {
        var name: String
        var type: String
        var help: String?
        var samples: [Sample] = []
    }

    struct Failure: Error, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    /// The families in order of appearance.
    private(set) var families: [Family] = []

    /// The sample of `name` whose labels include `labels`, if exactly one matches.
    func sample(_ name: String, _ labels: [String: String] = [:]) -> Sample? {
        let matches = families.flatMap(\.samples).filter { s in
            s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value }
        }
        return matches.count == 1 ? matches[0] : nil
    }

    func family(_ name: String) -> Family? { families.first { $0.name == name } }

    init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else { throw Failure(line: 0, message: "no final newline") }
        var types: [String: String] = [:]
        var seenSeries = Set<String>()
        var closed = Set<String>()
        var current: String?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let n = index + 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard parts.count >= 3, parts[0] == "#", ["TYPE", "HELP"].contains(parts[1]) else { continue }
                let name = parts[2]
                guard Self.isMetricName(name) else { throw Failure(line: n, message: "bad metric name \(name)") }
                if parts[1] == "TYPE" {
                    guard parts.count == 4,
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else { throw Failure(line: n, message: "bad TYPE line") }
                    guard types[name] == nil else { throw Failure(line: n, message: "second TYPE for \(name)") }
                    guard !closed.contains(name), family(name)?.samples.isEmpty ?? true else {
                        throw Failure(line: n, message: "TYPE for \(name) after its samples")
                    }
                    types[name] = parts[3]
                    if let i = families.firstIndex(where: { $0.name == name }) {
                        families[i].type = parts[3]
                    } else {
                        families.append(Family(name: name, type: parts[3]))
                    }
                } else {
                    if family(name) == nil { families.append(Family(name: name, type: "untyped")) }
                    let i = families.firstIndex { $0.name == name }!
                    guard families[i].help == nil else { throw Failure(line: n, message: "second HELP for \(name)") }
                    families[i].help = parts.count == 4 ? parts[3] : ""
                }
                continue
            }
            let sample = try Self.parseSample(Substring(line), line: n)
            let familyName = Self.familyName(of: sample.name, types: types)
            if let c = current, c != familyName { closed.insert(c) }
            guard !closed.contains(familyName) else {
                throw Failure(line: n, message: "samples of \(familyName) are not grouped together")
            }
            current = familyName
            let key =
                sample.name + "{"
                + sample.labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ",")
            guard seenSeries.insert(key).inserted else { throw Failure(line: n, message: "duplicate series \(key)") }
            if let i = families.firstIndex(where: { $0.name == familyName }) {
                families[i].samples.append(sample)
            } else {
                families.append(Family(name: familyName, type: "untyped", samples: [sample]))
            }
        }
        for f in families where f.type == "histogram" { try Self.checkHistogram(f) }
    }

    private static func familyName(of sample: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
            let base = String(sample.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return sample
    }

    /// Buckets cumulative with increasing `le`, a `+Inf` bucket equal to `_count`, per label set.
    private static func checkHistogram(_ f: Family) throws {
        var groups: [String: [Sample]] = [:]
        for s in f.samples {
            let key = s.labels.filter { $0.key != "le" }.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }
                .joined(separator: ",")
            groups[key, default: []].append(s)
        }
        for (key, samples) in groups {
            let buckets = samples.filter { $0.name == f.name + "_bucket" }
            guard let count = samples.first(where: { $0.name == f.name + "_count" }),
                samples.contains(where: { $0.name == f.name + "_sum" })
            else { throw Failure(line: 0, message: "histogram \(f.name){\(key)} lacks _sum or _count") }
            var lastLe = -Double.infinity
            var lastCount = 0.0
            for b in buckets {
                guard let le = b.labels["le"].flatMap(parseValue) else {
                    throw Failure(line: 0, message: "bucket without a numeric le")
                }
                guard le > lastLe, b.value >= lastCount else {
                    throw Failure(line: 0, message: "histogram \(f.name) buckets not cumulative")
                }
                lastLe = le
                lastCount = b.value
            }
            guard lastLe == .infinity, lastCount == count.value else {
                throw Failure(line: 0, message: "histogram \(f.name): +Inf bucket missing or not equal to _count")
            }
        }
    }

    static func isMetricName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCII,
            CharacterSet.letters.contains(first) || first == "_" || first == ":"
        else { return false }
        return s.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == ":")
        }
    }

    static func isLabelName(_ s: String) -> Bool {
        !s.isEmpty && !s.contains(":") && isMetricName(s)
    }

    /// Go's ParseFloat forms Prometheus accepts: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
    static func parseValue(_ s: String) -> Double? {
        switch s {
        case "NaN": return .nan
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        default:
            guard s.range(of: #"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"#, options: .regularExpression) != nil else {
                return nil
            }
            return Double(s)
        }
    }

    private static func parseSample(_ line: Substring, line n: Int) throws -> Sample {
        var i = line.startIndex
        while i < line.endIndex, line[i] != "{", line[i] != " " { i = line.index(after: i) }
        let name = String(line[..<i])
        guard isMetricName(name) else { throw Failure(line: n, message: "bad metric name \"\(name)\"") }
        var labels: [String: String] = [:]
        if i < line.endIndex, line[i] == "{" {
            i = line.index(after: i)
            while true {
                guard i < line.endIndex else { throw Failure(line: n, message: "unterminated label set") }
                if line[i] == "}" {
                    i = line.index(after: i)
                    break
                }
                var j = i
                while j < line.endIndex, line[j] != "=" { j = line.index(after: j) }
                let label = String(line[i..<j])
                guard isLabelName(label), j < line.endIndex else {
                    throw Failure(line: n, message: "bad label name \"\(label)\"")
                }
                j = line.index(after: j)
                guard j < line.endIndex, line[j] == "\"" else {
                    throw Failure(line: n, message: "unquoted label value")
                }
                j = line.index(after: j)
                var value = ""
                while true {
                    guard j < line.endIndex else { throw Failure(line: n, message: "unterminated label value") }
                    let c = line[j]
                    if c == "\"" { break }
                    if c == "\\" {
                        j = line.index(after: j)
                        guard j < line.endIndex else { throw Failure(line: n, message: "dangling escape") }
                        switch line[j] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw Failure(line: n, message: "bad escape \\\(line[j])")
                        }
                    } else {
                        value.append(c)
                    }
                    j = line.index(after: j)
                }
                guard labels[label] == nil else { throw Failure(line: n, message: "label \(label) twice") }
                labels[label] = value
                i = line.index(after: j)
                if i < line.endIndex, line[i] == "," { i = line.index(after: i) }
            }
        }
        let rest = line[i...].split(separator: " ", omittingEmptySubsequences: false)
        guard rest.first == "", rest.count == 2 || rest.count == 3 else {
            throw Failure(line: n, message: "expected one space, a value and an optional timestamp")
        }
        guard let value = parseValue(String(rest[1])) else { throw Failure(line: n, message: "bad value \(rest[1])") }
        if rest.count == 3, Int64(rest[2]) == nil { throw Failure(line: n, message: "bad timestamp \(rest[2])") }
        return Sample(name: name, labels: labels, value: value)
    }
}
