internal import CLibPQ

extension ConnectionString {
    /// The options a connection string sets, parsed by libpq itself (`PQconninfoParse`), in either form (keyword/value
    /// or URI). Only options the string sets are returned; `PG*` variables and defaults are not applied.
    ///
    /// - Returns: `nil` when libpq cannot parse the string. libpq's message is dropped on purpose: it quotes the
    ///   string, password included.
    package static func options(_ conninfo: String) -> [String: String]? {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &error) else {
            if let error { PQfreemem(error) }
            return nil
        }
        defer { PQconninfoFree(parsed) }
        var result: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { result[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        return result
    }

    /// `conninfo` with `key=value` added (URI: as a query parameter), for options the string does not set.
    package static func adding(_ key: String, _ value: String, to conninfo: String) -> String {
        if isURI(conninfo) {
            let (base, fragment) = conninfo.firstIndex(of: "#").map { (String(conninfo[..<$0]), String(conninfo[$0...])) }
                ?? (conninfo, "")
            return base + (base.contains("?") ? "&" : "?") + "\(key)=\(value)" + fragment
        }
        return conninfo.isEmpty ? "\(key)=\(value)" : conninfo + " \(key)=\(value)"
    }
}
