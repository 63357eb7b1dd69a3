import Foundation

/// Reads a `.env.<env>` file: the secrets of one environment (database URL, Sentry DSN) kept outside the shell.
///
/// The format is the common dotenv subset: `KEY=value` lines, optional `export ` prefix, `#` comments and blank
/// lines, values optionally in single quotes (taken literally) or double quotes (`\n`, `\"`, `\\` escapes). A
/// variable already set in the process environment wins over the file, as every dotenv loader does, so CI and
/// secret managers can override it. `.env.*` files are ignored by git; `.env.example` is the committed template.
package enum EnvironmentFile {
    /// The file name for an environment: `.env.dev`, `.env.staging`, `.env.prod`.
    package static func name(env: String) -> String { ".env.\(env)" }

    /// Parses the text of a file.
    ///
    /// - Throws: ``PipelineError`` 64 naming `path:line` for a line that is not `KEY=value` (the line's value is not
    ///   quoted back: it may be a secret).
    package static func parse(_ text: String, path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated()
        {
            var line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            line = line.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst("export ".count).drop { $0 == " " } }
            guard let equals = line.firstIndex(of: "=") else {
                throw PipelineError.usage("\(path):\(index + 1): expected KEY=value")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }),
                !(key.first!.isNumber)
            else {
                throw PipelineError.usage("\(path):\(index + 1): invalid variable name")
            }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("'"), value.hasSuffix("'") {
                value = String(value.dropFirst().dropLast())
            } else if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = unescape(value.dropFirst().dropLast())
            } else if let hash = value.range(of: " #") {
                value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces)
            }
            result[key] = value
        }
        return result
    }

    /// The process environment with `.env.<env>` (in `directory`) underneath it, when the file exists.
    package static func merged(
        env: String, directory: String = FileManager.default.currentDirectoryPath,
        process: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String: String] {
        let path = (directory as NSString).appendingPathComponent(name(env: env))
        guard let data = FileManager.default.contents(atPath: path) else { return process }
        let file = try parse(String(decoding: data, as: UTF8.self), path: path)
        return file.merging(process) { _, fromProcess in fromProcess }
    }

    private static func unescape(_ s: Substring) -> String {
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
