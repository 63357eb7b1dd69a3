import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy between PostgreSQL clients and a server that can break a connection at a chosen protocol message: a
/// real network fault, with no hook in the code under test.
///
/// Clients connect to `127.0.0.1:<port>` (with `sslmode=disable`, so the stream stays readable); each connection is
/// relayed to the server (a Unix socket or TCP) by two threads, one per direction, which frame the protocol
/// (PostgreSQL "Message Flow" and "Message Formats"):
/// - client → server: first the startup packet (Int32 length, no type byte; an `SSLRequest` or `GSSENCRequest` is
///   followed by another startup packet), then messages of a type byte and an Int32 length that counts itself;
/// - server → client: a single byte answering each `SSLRequest`/`GSSENCRequest`, then typed messages.
///
/// For each simple Query (`Q`) the client sends, ``Rule`` decides whether to cut. When it does, the query is still
/// forwarded and the server processes it, but its reply (up to and including `ReadyForQuery`) is swallowed, and then
/// both sockets are closed: the client sees the connection drop without knowing whether the statement took effect.
/// For a `COMMIT` that is the lost-acknowledgement case.
final class FaultProxy: @unchecked Sendable {
    // @unchecked: the mutable state is read and written under `lock`; sockets are plain descriptors.

    /// Where the server listens.
    enum Upstream: Sendable {
        /// A Unix socket path, for example `/tmp/pg/.s.PGSQL.5432`.
        case unixSocket(String)
        /// A TCP host (IPv4 address) and port.
        case tcp(host: String, port: UInt16)
    }

    /// Decides whether to cut a connection after the server has answered this query. Gets the connection's number
    /// (1-based, in accept order) and the query text.
    typealias Rule = @Sendable (_ connection: Int, _ query: String) -> Bool

    /// The local port clients connect to.
    let port: UInt16
    private let upstream: Upstream
    private let rule: Rule
    private let listener: Int32
    private let lock = NSLock()
    private var links: [Link] = []
    private var _cuts = 0
    private var stopped = false
    private let acceptDone = DispatchSemaphore(value: 0)

    /// Starts listening on an ephemeral port of 127.0.0.1.
    init(upstream: Upstream, rule: @escaping Rule) throws {
        self.upstream = upstream
        self.rule = rule
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProxyError("socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ProxyError("bind/listen: \(message)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Connections accepted so far.
    var connections: Int { lock.withLock { links.count } }
    /// Connections cut by the rule.
    var cuts: Int { lock.withLock { _cuts } }

    /// Stops accepting and closes every relayed connection.
    func stop() {
        let open: [Link] = lock.withLock {
            stopped = true
            return links
        }
        shutdown(listener, Int32(SHUT_RDWR))
        acceptDone.wait()
        close(listener)
        open.forEach { $0.cut() }
    }

    /// A client connection string for this proxy (keyword/value form; TCP, no TLS, no GSSAPI encryption).
    func conninfo(user: String, database: String, extra: String = "") -> String {
        "host=127.0.0.1 port=\(port) user=\(user) dbname=\(database) sslmode=disable gssencmode=disable \(extra)"
    }

    // MARK: - Accepting

    private func acceptLoop() {
        defer { acceptDone.signal() }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server: Int32
            do {
                server = try connectUpstream()
            } catch {
                close(client)
                continue
            }
            let link: Link? = lock.withLock {
                guard !stopped else { return nil }
                let link = Link(number: links.count + 1, client: client, server: server)
                links.append(link)
                return link
            }
            guard let link else {
                close(client)
                close(server)
                return
            }
            Thread.detachNewThread { [self] in relayClientToServer(link) }
            Thread.detachNewThread { [self] in relayServerToClient(link) }
        }
    }

    private func connectUpstream() throws -> Int32 {
        switch upstream {
        case .unixSocket(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ProxyError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                throw ProxyError("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                throw ProxyError("connect \(path): \(message)")
            }
            return fd
        case .tcp(let host, let port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ProxyError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr(host)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                throw ProxyError("connect \(host):\(port): \(message)")
            }
            return fd
        }
    }

    // MARK: - Relaying

    /// Client → server: frames the startup packet(s) and typed messages, asks the rule about each simple Query.
    private func relayClientToServer(_ link: Link) {
        defer { link.finishPump() }
        var buffer: [UInt8] = []
        var started = false
        while let bytes = link.read(from: link.client) {
            buffer += bytes
            while true {
                if !started {
                    guard buffer.count >= 8 else { break }
                    let length = Int(Self.int32(buffer, at: 0))
                    guard length >= 8, buffer.count >= length else { break }
                    let code = Self.int32(buffer, at: 4)
                    if code == 80_877_103 || code == 80_877_104 {
                        link.expectSingleByteReply()  // SSLRequest / GSSENCRequest: answered by one byte
                    } else {
                        started = true  // StartupMessage (or CancelRequest, after which nothing follows)
                    }
                    guard link.write(Array(buffer[0..<length]), to: link.server) else { return }
                    buffer.removeFirst(length)
                } else {
                    guard buffer.count >= 5 else { break }
                    let total = 1 + Int(Self.int32(buffer, at: 1))
                    guard total >= 5, buffer.count >= total else { break }
                    if buffer[0] == UInt8(ascii: "Q") {
                        let text = String(decoding: buffer[5..<(total - 1)], as: UTF8.self)
                        if rule(link.number, text) { link.arm() }
                    }
                    guard link.write(Array(buffer[0..<total]), to: link.server) else { return }
                    buffer.removeFirst(total)
                }
            }
        }
    }

    /// Server → client: frames replies; once armed, swallows everything up to `ReadyForQuery`, then cuts.
    private func relayServerToClient(_ link: Link) {
        defer { link.finishPump() }
        var buffer: [UInt8] = []
        var opaque = false
        while let bytes = link.read(from: link.server) {
            if opaque {
                guard link.write(bytes, to: link.client) else { return }
                continue
            }
            buffer += bytes
            while !buffer.isEmpty {
                if link.takeSingleByteReply() {
                    let reply = buffer.removeFirst()
                    // 'S' or 'G': TLS or GSSAPI encryption follows, which cannot be framed: relay it untouched.
                    if reply != UInt8(ascii: "N") { opaque = true }
                    guard link.write([reply], to: link.client) else { return }
                    if opaque {
                        guard link.write(buffer, to: link.client) else { return }
                        buffer.removeAll()
                    }
                    continue
                }
                guard buffer.count >= 5 else { break }
                let total = 1 + Int(Self.int32(buffer, at: 1))
                guard total >= 5, buffer.count >= total else { break }
                let type = buffer[0]
                if link.isArmed {
                    if type == UInt8(ascii: "Z") {
                        lock.withLock { _cuts += 1 }
                        link.cut()
                        return
                    }
                } else {
                    guard link.write(Array(buffer[0..<total]), to: link.client) else { return }
                }
                buffer.removeFirst(total)
            }
        }
    }

    private static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        Int32(
            bitPattern: UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
                | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3]))
    }

    // MARK: - Link

    /// One relayed connection: its two sockets and the state both pumps share.
    private final class Link: @unchecked Sendable {
        // @unchecked: the mutable fields are read and written under `lock`.
        let number: Int
        let client: Int32
        let server: Int32
        private let lock = NSLock()
        private var armed = false
        private var singleByteReplies = 0
        private var shut = false
        private var pumpsRunning = 2

        init(number: Int, client: Int32, server: Int32) {
            self.number = number
            self.client = client
            self.server = server
        }

        var isArmed: Bool { lock.withLock { armed } }
        func arm() { lock.withLock { armed = true } }
        func expectSingleByteReply() { lock.withLock { singleByteReplies += 1 } }

        func takeSingleByteReply() -> Bool {
            lock.withLock {
                guard singleByteReplies > 0 else { return false }
                singleByteReplies -= 1
                return true
            }
        }

        /// Reads what is available; `nil` at end of stream or on an error.
        func read(from fd: Int32) -> [UInt8]? {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { return Array(chunk[0..<n]) }
                if n < 0, errno == EINTR { continue }
                return nil
            }
        }

        /// Writes everything; `false` when the socket is gone.
        func write(_ bytes: [UInt8], to fd: Int32) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes {
                    send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }

        /// Shuts both sockets down, which ends both pumps' reads; the descriptors are closed by the last pump.
        func cut() {
            lock.withLock {
                guard !shut else { return }
                shut = true
                shutdown(client, Int32(SHUT_RDWR))
                shutdown(server, Int32(SHUT_RDWR))
            }
        }

        /// Called by each pump when it ends: the first cuts the link, the last closes the descriptors.
        func finishPump() {
            cut()
            let last = lock.withLock {
                pumpsRunning -= 1
                return pumpsRunning == 0
            }
            if last {
                close(client)
                close(server)
            }
        }
    }
}

/// A proxy setup failure.
struct ProxyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
