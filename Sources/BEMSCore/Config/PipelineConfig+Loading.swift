import Foundation

extension PipelineConfig {
    /// Reads and checks a configuration file.
    ///
    /// - Throws: ``PipelineError`` with exit status 64 naming the file and the key path, or 66 when the file is missing.
    package static func load(path: String) throws -> PipelineConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PipelineError.noInput("\(path): configuration file not found")
        }
        return try parse(data, file: path)
    }

    /// Parses configuration JSON. Keys are checked strictly: unknown keys are errors, so typos don't pass silently.
    package static func parse(_ data: Data, file: String = "pipeline.json") throws -> PipelineConfig {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw PipelineError.usage("\(file): not valid JSON (\(error.localizedDescription))")
        }
        var reader = ConfigReader(file: file)
        return try reader.config(root)
    }
}

/// Walks the JSON tree with a key path, so every error names the exact key and what was expected.
struct ConfigReader {
    let file: String

    func fail(_ path: String, _ message: String) -> PipelineError {
        PipelineError.usage("\(file): \(path.isEmpty ? "top level" : path): \(message)")
    }

    func object(_ value: Any, _ path: String, allowed: Set<String>) throws -> [String: Any] {
        guard let dict = value as? [String: Any] else { throw fail(path, "expected an object") }
        for key in dict.keys.sorted() where !allowed.contains(key) {
            throw fail(join(path, key), "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
        return dict
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func string(_ value: Any, _ path: String) throws -> String {
        guard let s = value as? String, !s.isEmpty else { throw fail(path, "expected a non-empty string") }
        return s
    }

    func number(_ value: Any, _ path: String) throws -> NSNumber {
        guard let n = value as? NSNumber, !isBoolean(n) else { throw fail(path, "expected a number") }
        return n
    }

    func integer(_ value: Any, _ path: String, min: Int, max: Int) throws -> Int {
        let n = try number(value, path)
        let d = n.doubleValue
        guard d.rounded() == d, d >= Double(min), d <= Double(max) else {
            throw fail(path, "expected an integer from \(min) to \(max)")
        }
        return Int(d)
    }

    func fraction(_ value: Any, _ path: String) throws -> Double {
        let d = try number(value, path).doubleValue
        guard d >= 0, d <= 1 else { throw fail(path, "expected a number from 0 to 1") }
        return d
    }

    /// A decimal bound, written as a JSON number or a string, read exactly (never through Double).
    func decimal(_ value: Any, _ path: String) throws -> Int64 {
        let text: String
        if let s = value as? String {
            text = s
        } else if let n = value as? NSNumber, !isBoolean(n) {
            // A JSON number arrives as a Double; its shortest text form is the text that was written (up to 15
            // significant digits), which is re-read exactly below. Strings avoid the question entirely.
            text = n.stringValue
        } else {
            throw fail(path, "expected a decimal number")
        }
        do {
            return try DecimalParser.parse(text)
        } catch {
            throw fail(path, "expected a decimal with at most 4 decimals within ±999999.9999, found \"\(text)\"")
        }
    }

    func bounds(_ value: Any, _ path: String) throws -> ClosedRange<Int64> {
        guard let pair = value as? [Any], pair.count == 2 else { throw fail(path, "expected [min, max]") }
        let lo = try decimal(pair[0], path + "[0]")
        let hi = try decimal(pair[1], path + "[1]")
        guard lo <= hi else { throw fail(path, "min is greater than max") }
        return lo...hi
    }

    func seconds(_ value: Any, _ path: String, min: Double, max: Double) throws -> Double {
        let d = try number(value, path).doubleValue
        guard d.isFinite, d >= min, d <= max else {
            throw fail(
                path,
                "expected a number of seconds from \(PipelineConfig.written(min)) to \(PipelineConfig.written(max))")
        }
        return d
    }

    /// `environments.<env>.retry`: `baseDelaySeconds`, `maxAttempts`, `budgetSeconds`, `jitter`.
    func retry(_ value: Any, _ path: String, default policy: RetryPolicy) throws -> RetryPolicy {
        let o = try object(value, path, allowed: ["baseDelaySeconds", "maxAttempts", "budgetSeconds", "jitter"])
        var policy = policy
        if let v = o["baseDelaySeconds"] {
            policy.baseDelay = try seconds(v, path + ".baseDelaySeconds", min: 0, max: 60)
        }
        if let v = o["maxAttempts"] { policy.maxAttempts = try integer(v, path + ".maxAttempts", min: 1, max: 20) }
        if let v = o["budgetSeconds"] { policy.budget = try seconds(v, path + ".budgetSeconds", min: 0, max: 3600) }
        if let v = o["jitter"] {
            let names = RetryPolicy.Jitter.allCases.map(\.rawValue)
            guard let s = v as? String, let j = RetryPolicy.Jitter(rawValue: s) else {
                throw fail(path + ".jitter", "expected one of: \(names.joined(separator: ", "))")
            }
            policy.jitter = j
        }
        return policy
    }

    /// A duration in milliseconds: a JSON integer (milliseconds) or a string `<integer><unit>` with unit `ms`, `s` or
    /// `min` (`"250ms"`, `"30s"`, `"2min"`), from 0 to 24 hours.
    func milliseconds(_ value: Any, _ path: String) throws -> Int {
        let limit = 86_400_000
        let expected =
            "expected milliseconds (an integer) or a string such as \"250ms\", \"30s\" or \"2min\", up to 24 h"
        if let n = value as? NSNumber, !isBoolean(n) {
            let d = n.doubleValue
            guard d.rounded() == d, d >= 0, d <= Double(limit) else { throw fail(path, expected) }
            return Int(d)
        }
        guard let text = value as? String else { throw fail(path, expected) }
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let factor: Int? =
            switch text.dropFirst(digits.count) {
            case "ms": 1
            case "s": 1000
            case "min": 60_000
            default: nil
            }
        guard let factor, !digits.isEmpty, digits.count <= 9, let amount = Int(digits), amount * factor <= limit
        else { throw fail(path, expected) }
        return amount * factor
    }

    mutating func config(_ root: Any) throws -> PipelineConfig {
        var config = PipelineConfig()
        let top = try object(
            root, "",
            allowed: [
                "$comment", "sources", "workDir", "timeZone", "chunk", "load", "ranges", "rejectThreshold",
                "maxLineBytes", "environments", "monitoring", "serve",
            ])
        if let v = top["sources"] {
            guard let list = v as? [Any] else { throw fail("sources", "expected an array") }
            config.sources = try list.enumerated().map { index, item in
                let path = "sources[\(index)]"
                if let s = item as? String { return .init(path: s, floor: nil) }
                let o = try object(item, path, allowed: ["path", "floor"])
                guard let p = o["path"] else { throw fail(path + ".path", "missing") }
                return .init(
                    path: try string(p, path + ".path"),
                    floor: try o["floor"].map { try integer($0, path + ".floor", min: 1, max: 99) })
            }
        }
        if let v = top["workDir"] { config.workDir = try string(v, "workDir") }
        if let v = top["timeZone"] {
            config.timeZone = try string(v, "timeZone")
            guard TimeZone(identifier: config.timeZone) != nil else {
                throw fail("timeZone", "unknown time zone \"\(config.timeZone)\"")
            }
        }
        if let v = top["chunk"] {
            let o = try object(v, "chunk", allowed: ["days", "maxRows", "zstdLevel"])
            if let d = o["days"] { config.chunk.days = try integer(d, "chunk.days", min: 1, max: 366) }
            if let d = o["maxRows"] {
                config.chunk.maxRows = try integer(d, "chunk.maxRows", min: 1000, max: 50_000_000)
            }
            if let d = o["zstdLevel"] { config.chunk.zstdLevel = try integer(d, "chunk.zstdLevel", min: 1, max: 19) }
        }
        if let v = top["load"] {
            let o = try object(v, "load", allowed: ["minPieceRows", "indexBuildWorkers"])
            if let d = o["minPieceRows"] {
                config.load.minPieceRows = try integer(d, "load.minPieceRows", min: 1, max: 50_000_000)
            }
            if let d = o["indexBuildWorkers"] {
                config.load.indexBuildWorkers = try integer(d, "load.indexBuildWorkers", min: 0, max: 64)
            }
        }
        if let v = top["ranges"] {
            let o = try object(v, "ranges", allowed: Set(EquipmentType.allCases.map(\.rawValue)))
            for (key, item) in o {
                let path = "ranges.\(key)"
                let type = EquipmentType(rawValue: key)!
                let r = try object(item, path, allowed: ["valid", "plausible"])
                var range = config.ranges[type]!
                if let b = r["valid"] { range.valid = try bounds(b, path + ".valid") }
                if let b = r["plausible"] { range.plausible = try bounds(b, path + ".plausible") }
                config.ranges[type] = range
            }
        }
        if let v = top["rejectThreshold"] { config.rejectThreshold = try fraction(v, "rejectThreshold") }
        if let v = top["maxLineBytes"] {
            config.maxLineBytes = try integer(v, "maxLineBytes", min: 1024, max: 64 << 20)
        }
        if let v = top["environments"] {
            let o = try object(v, "environments", allowed: Set(PipelineConfig.defaultEnvironments.keys))
            for (name, item) in o {
                let path = "environments.\(name)"
                let e = try object(
                    item, path,
                    allowed: [
                        "databaseURLEnv", "sample", "retry", "statementTimeout", "lockTimeout",
                        "idleInTransactionTimeout", "workers", "maxConnections", "rateLimit", "storageLimitMB",
                        "alerts", "serviceTokenEnv",
                    ])
                var env = config.environments[name]!
                if let u = e["databaseURLEnv"] { env.databaseURLEnv = try string(u, path + ".databaseURLEnv") }
                if let s = e["sample"] { env.sample = try fraction(s, path + ".sample") }
                if let r = e["retry"] { env.retry = try retry(r, path + ".retry", default: env.retry) }
                if let t = e["statementTimeout"] {
                    env.statementTimeoutMilliseconds = try milliseconds(t, path + ".statementTimeout")
                }
                if let t = e["lockTimeout"] { env.lockTimeoutMilliseconds = try milliseconds(t, path + ".lockTimeout") }
                if let t = e["idleInTransactionTimeout"] {
                    env.idleInTransactionTimeoutMilliseconds = try milliseconds(t, path + ".idleInTransactionTimeout")
                }
                if let w = e["workers"] { env.workers = try integer(w, path + ".workers", min: 1, max: 64) }
                if let m = e["maxConnections"] {
                    env.maxConnections = try integer(m, path + ".maxConnections", min: 2, max: 10_000)
                }
                if let r = e["rateLimit"] {
                    let o = try object(r, path + ".rateLimit", allowed: ["rowsPerSecond", "bytesPerSecond", "connectionsPerSecond"])
                    func rate(_ key: String) throws -> Double? {
                        guard let v = o[key] else { return nil }
                        let d = try number(v, path + ".rateLimit." + key).doubleValue
                        guard d.isFinite, d > 0 else { throw fail(path + ".rateLimit." + key, "expected a number above 0") }
                        return d
                    }
                    env.rateLimit = .init(
                        rowsPerSecond: try rate("rowsPerSecond"), bytesPerSecond: try rate("bytesPerSecond"),
                        connectionsPerSecond: try rate("connectionsPerSecond"))
                }
                try environmentMonitoring(e, path, into: &env)
                if let t = e["serviceTokenEnv"] { env.serviceTokenEnv = try variableName(t, path + ".serviceTokenEnv") }
                config.environments[name] = env
            }
        }
        if let v = top["monitoring"] { config.monitoring = try monitoring(v, "monitoring") }
        if let v = top["serve"] { config.serve = try serve(v, "serve") }
        return config
    }
}

/// JSON booleans arrive as NSNumber too; their Objective-C type code is `c`.
private func isBoolean(_ n: NSNumber) -> Bool {
    String(cString: n.objCType) == "c"
}

extension PipelineConfig {
    /// A number as a configuration file writes it: `10`, `0.5`.
    package static func written(_ d: Double) -> String {
        d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}
