/// Helpers for libpq connection strings (keyword/value form or `postgresql://` URI).
package enum ConnectionString {
    /// The mask that replaces a password.
    package static let mask = "*****"

    /// Returns `conninfo` with every password masked, safe to show in logs and error messages.
    ///
    /// - Keyword/value form: the value of `password=` (quoted or not) becomes ``mask``.
    /// - URI form: `user:password@` becomes `user:*****@`, and a `password` query parameter is masked.
    ///
    /// A keyword/value string that cannot be parsed is replaced entirely by `<unparseable connection string>`,
    /// so a typo never leaks the password.
    ///
    /// - Parameter conninfo: A libpq connection string.
    /// - Returns: The redacted string.
    package static func redacted(_ conninfo: String) -> String {
        if conninfo.hasPrefix("postgresql://") || conninfo.hasPrefix("postgres://") {
            return redactedURI(conninfo)
        }
        return redactedKeywordValue(conninfo) ?? "<unparseable connection string>"
    }

    /// Whether `conninfo` is in URI form.
    package static func isURI(_ conninfo: String) -> Bool {
        conninfo.hasPrefix("postgresql://") || conninfo.hasPrefix("postgres://")
    }

    // MARK: - URI

    private static func redactedURI(_ uri: String) -> String {
        let bytes = Array(uri.utf8)
        let schemeEnd = (uri.hasPrefix("postgresql://") ? "postgresql://" : "postgres://").utf8.count
        var out = Array(bytes[..<schemeEnd])
        // The authority runs up to the first "/", "?" or "#".
        var i = schemeEnd
        while i < bytes.count, bytes[i] != UInt8(ascii: "/"), bytes[i] != UInt8(ascii: "?"),
            bytes[i] != UInt8(ascii: "#")
        {
            i += 1
        }
        let authority = bytes[schemeEnd..<i]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) {
            let userInfo = bytes[schemeEnd..<at]
            if let colon = userInfo.firstIndex(of: UInt8(ascii: ":")) {
                out += bytes[schemeEnd...colon]
                out += mask.utf8
            } else {
                out += userInfo
            }
            out += bytes[at..<i]
        } else {
            out += authority
        }
        // Path, then query parameters.
        var j = i
        while j < bytes.count, bytes[j] != UInt8(ascii: "?") { j += 1 }
        out += bytes[i..<j]
        guard j < bytes.count else { return String(decoding: out, as: UTF8.self) }
        out.append(UInt8(ascii: "?"))
        var fragment: ArraySlice<UInt8> = []
        var query = bytes[(j + 1)...]
        if let hash = query.firstIndex(of: UInt8(ascii: "#")) {
            fragment = bytes[hash...]
            query = bytes[(j + 1)..<hash]
        }
        let pairs = query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false)
        for (n, pair) in pairs.enumerated() {
            if n > 0 { out.append(UInt8(ascii: "&")) }
            let key = pair.prefix { $0 != UInt8(ascii: "=") }
            if String(decoding: key, as: UTF8.self).lowercased() == "password" {
                out += key
                out += "=".utf8
                out += mask.utf8
            } else {
                out += pair
            }
        }
        out += fragment
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Keyword/value

    /// Re-emits `key=value` pairs with the password masked, or returns `nil` on a syntax error.
    private static func redactedKeywordValue(_ conninfo: String) -> String? {
        let bytes = Array(conninfo.utf8)
        var out: [UInt8] = []
        var i = 0
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        while true {
            while i < bytes.count, isSpace(bytes[i]) { i += 1 }
            if i == bytes.count { break }
            let keyStart = i
            while i < bytes.count, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: "=") { i += 1 }
            let key = bytes[keyStart..<i]
            guard !key.isEmpty else { return nil }
            while i < bytes.count, isSpace(bytes[i]) { i += 1 }
            guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { return nil }
            i += 1
            while i < bytes.count, isSpace(bytes[i]) { i += 1 }
            let valueStart = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "'") {
                i += 1
                var closed = false
                while i < bytes.count {
                    if bytes[i] == UInt8(ascii: "\\") {
                        i += 2
                        continue
                    }
                    if bytes[i] == UInt8(ascii: "'") {
                        closed = true
                        i += 1
                        break
                    }
                    i += 1
                }
                guard closed else { return nil }
            } else {
                while i < bytes.count, !isSpace(bytes[i]) {
                    if bytes[i] == UInt8(ascii: "\\") { i += 1 }
                    i += 1
                }
            }
            i = min(i, bytes.count)
            if !out.isEmpty { out.append(0x20) }
            out += key
            out.append(UInt8(ascii: "="))
            if String(decoding: key, as: UTF8.self) == "password" {
                out += mask.utf8
            } else {
                out += bytes[valueStart..<i]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
