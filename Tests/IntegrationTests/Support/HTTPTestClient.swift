import BEMSServer
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 client over a plain TCP socket to 127.0.0.1, for the admin API tests: one request per
/// connection (`Connection: close`), the body sent with `Content-Length` or chunked, the answer read to the end.
/// Written on sockets rather than URLSession so a test controls exactly what goes on the wire (a body bigger than it
/// declares, a chunked body, no `Authorization` header) and sees exactly what comes back.
struct HTTPTestClient: Sendable {
    let port: Int

    struct Response: Sendable, CustomStringConvertible {
        var status: Int
        /// Header names in lowercase.
        var headers: [String: String]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        var description: String { "\(status) \(text)" }

        /// The body as a JSON object.
        func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                throw ClientError("not a JSON object: \(text.prefix(200))")
            }
            return object
        }

        /// The body decoded as `T`.
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: Data(body)) }
    }

    struct ClientError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Sends one request and reads the whole answer (on a thread of its own, off the cooperative pool).
    ///
    /// - Parameters:
    ///   - token: Sent as `Authorization: Bearer <token>`.
    ///   - chunked: Send the body with `Transfer-Encoding: chunked` instead of `Content-Length`.
    func send(
        _ method: String, _ path: String, token: String? = nil, headers: [String: String] = [:], body: [UInt8]? = nil,
        chunked: Bool = false
    ) async throws -> Response {
        let port = self.port
        return try await runBlocking {
            try Self.exchange(
                port: port, method: method, path: path, token: token, headers: headers, body: body, chunked: chunked)
        }
    }

    func send(_ method: String, _ path: String, token: String? = nil, json: String) async throws -> Response {
        try await send(
            method, path, token: token, headers: ["Content-Type": "application/json"], body: Array(json.utf8))
    }

    /// Connects and sends nothing: the seconds until the server closes the connection, or `nil` when it is still
    /// open after `limit` seconds.
    func secondsUntilClosedWhenIdle(limit: Int) async throws -> Double? {
        let port = self.port
        return try await runBlocking {
            let fd = try Self.connectSocket(port: port, timeoutSeconds: limit)
            defer { close(fd) }
            let started = Date()
            var byte: UInt8 = 0
            while true {
                let n = recv(fd, &byte, 1, 0)
                if n == 0 || (n < 0 && errno == ECONNRESET) { return Date().timeIntervalSince(started) }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
                if n < 0 && errno != EINTR { throw ClientError("recv: errno \(errno)") }
            }
        }
    }

    /// A TCP connection to 127.0.0.1:`port` with send and receive timeouts.
    private static func connectSocket(port: Int, timeoutSeconds: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            throw ClientError("connect to 127.0.0.1:\(port): errno \(error)")
        }
        return fd
    }

    private static func exchange(
        port: Int, method: String, path: String, token: String?, headers: [String: String], body: [UInt8]?,
        chunked: Bool
    ) throws -> Response {
        let fd = try connectSocket(port: port, timeoutSeconds: 60)
        defer { close(fd) }

        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body {
            head += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        var out = Array(head.utf8)
        if let body {
            if chunked {
                var offset = 0
                while offset < body.count {
                    let n = min(16_384, body.count - offset)
                    out += Array((String(n, radix: 16) + "\r\n").utf8) + body[offset..<offset + n] + Array("\r\n".utf8)
                    offset += n
                }
                out += Array("0\r\n\r\n".utf8)
            } else {
                out += body
            }
        }
        // The server may answer (413) and close before taking the whole body: stop writing then, read the answer.
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 || errno == ECONNRESET {
                break
            } else if errno != EINTR {
                throw ClientError("recv: errno \(errno) after \(received.count) bytes")
            }
        }
        return try parse(received)
    }

    private static func parse(_ bytes: [UInt8]) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw ClientError("no complete answer head in \(bytes.count) bytes")
        }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw ClientError("bad status line \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoded: [UInt8] = []
            var i = 0
            while i < body.count {
                guard let lineEnd = (i..<body.count - 1).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                    let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self), radix: 16)
                else { break }
                if size == 0 { break }
                decoded += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
                i = lineEnd + 2 + size + 2
            }
            body = decoded
        }
        return Response(status: status, headers: headers, body: body)
    }
}
