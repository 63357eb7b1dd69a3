import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 (POSIX sockets, an ephemeral port) that records every request and answers
/// with a fixed status, for the monitoring deliveries (Sentry, webhook, Pushgateway). No outside network.
final class LocalHTTPServer: @unchecked Sendable {
    // @unchecked: `requests` is guarded by `lock`; the socket is closed once, in `stop()`.
    struct Request: Sendable {
        var method: String
        var path: String
        /// Header names lowercased.
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The whole request as received (request line, headers, body).
        var raw: String
    }

    let port: UInt16
    private let listener: Int32
    private let status: Int
    private let delay: Double
    private let lock = NSLock()
    private var _requests: [Request] = []
    private let done = DispatchSemaphore(value: 0)

    var requests: [Request] { lock.withLock { _requests } }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts listening; every request gets `status`, after `delay` seconds.
    init(status: Int = 200, delay: Double = 0) throws {
        self.status = status
        self.delay = delay
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    private var stopped = false

    /// Stops accepting and waits for the accept loop to end.
    func stop() {
        let first = lock.withLock {
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        done.wait()
    }

    private func acceptLoop() {
        defer { done.signal() }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ fd: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var sentContinue = false
        while true {
            if let end = headerEnd {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                let length = Self.headers(head)["content-length"].flatMap { Int($0) } ?? 0
                if !sentContinue, Self.headers(head)["expect"]?.lowercased() == "100-continue",
                    buffer.count < end + 4 + length
                {
                    sentContinue = true
                    write(fd, "HTTP/1.1 100 Continue\r\n\r\n")
                }
                if buffer.count >= end + 4 + length { break }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return }
            buffer += chunk[..<n]
            if headerEnd == nil, let range = Self.find([13, 10, 13, 10], in: buffer) { headerEnd = range }
        }
        let end = headerEnd!
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        let requestLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ").map(String.init)
        let headers = Self.headers(head)
        let length = headers["content-length"].flatMap { Int($0) } ?? 0
        let body = Data(buffer[(end + 4)..<(end + 4 + length)])
        let request = Request(
            method: parts.first ?? "", path: parts.count > 1 ? parts[1] : "", headers: headers, body: body,
            raw: String(decoding: buffer, as: UTF8.self))
        lock.withLock { _requests.append(request) }
        // Wait `delay` seconds, or until stopped.
        let until = Date().addingTimeInterval(delay)
        while Date() < until, !lock.withLock({ stopped }) { Thread.sleep(forTimeInterval: 0.02) }
        write(fd, "HTTP/1.1 \(status) Status\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    }

    private func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    private static func headers(_ head: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in head.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
