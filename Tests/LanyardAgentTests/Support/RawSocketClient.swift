import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A client of a Unix socket that sends exactly the bytes it is given: for clients no library would write. Its calls
/// block, so async tests run them through `offPool`.
struct RawSocketClient: Sendable {
    let descriptor: Int32

    /// Wraps a descriptor connected elsewhere.
    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Connects to `path`, or returns nil.
    init?(path: String) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    /// Sends everything it can; false when the agent has closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// True when the agent closes the connection within `timeout` seconds (whatever it sent before is skipped).
    func closedByPeer(within timeout: TimeInterval) -> Bool {
        let deadline = Date() + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000)))
            guard ready > 0 else { continue }
            let received = recv(descriptor, &buffer, buffer.count, 0)
            if received <= 0 { return true }
        }
        return false
    }

    func close() { Glibc.close(descriptor) }

    /// How many sockets of the agent in `directory` the kernel holds (its listener and accepted connections, which
    /// carry the listener's path), from `/proc/net/unix`. Unlike this process's descriptor count, other tests
    /// running alongside do not move it.
    ///
    /// The kernel writes `/proc/net/unix` a page at a time while sockets come and go, so one read can skip or repeat
    /// lines when other tests open and close sockets in parallel (a full run once missed the listener). The table is
    /// read until two reads in a row agree.
    static func agentSockets(in directory: String) -> Int {
        func count() -> Int {
            // Read to the end: String(contentsOfFile:) stops after the first page of a /proc file (its size is 0).
            let data = FileHandle(forReadingAtPath: "/proc/net/unix")?.readDataToEndOfFile() ?? Data()
            return String(decoding: data, as: UTF8.self).split(separator: "\n").filter {
                // The admin endpoint's socket lives in `private/`; the Workload API's anywhere else in the directory.
                $0.contains(directory) && !$0.contains(directory + "/private/")
            }.count
        }
        var previous = count()
        for _ in 0..<20 {
            let next = count()
            if next == previous { return next }
            previous = next
        }
        return previous
    }
}

/// HTTP/2 and gRPC framing by hand (RFC 9113, RFC 7541 literals without Huffman), for clients that misbehave.
enum HTTP2Bytes {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + withUnsafeBytes(of: (stream & 0x7FFF_FFFF).bigEndian, Array.init) + payload
    }

    /// A SETTINGS frame; `initialWindow` 0 lets the agent send no DATA at all until the window opens.
    static func settings(initialWindow: UInt32? = nil) -> [UInt8] {
        var payload: [UInt8] = []
        if let initialWindow { payload += [0x00, 0x04] + withUnsafeBytes(of: initialWindow.bigEndian, Array.init) }
        return frame(type: 0x4, payload: payload)
    }

    /// An HPACK integer with an `prefixBits`-bit prefix.
    static func integer(_ value: Int, prefixBits: Int, firstByte: UInt8 = 0) -> [UInt8] {
        let limit = (1 << prefixBits) - 1
        guard value >= limit else { return [firstByte | UInt8(value)] }
        var bytes = [firstByte | UInt8(limit)]
        var rest = value - limit
        while rest >= 128 {
            bytes.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        return bytes + [UInt8(rest)]
    }

    /// A header block of literal fields without indexing.
    static func headerBlock(_ fields: [(String, String)]) -> [UInt8] {
        fields.flatMap { name, value in
            integer(name.utf8.count, prefixBits: 7) + Array(name.utf8) + integer(value.utf8.count, prefixBits: 7)
                + Array(value.utf8)
        }
    }

    /// The request headers of a gRPC call to `path`, plus `extra` fields.
    static func requestHeaders(path: String, extra: [(String, String)] = []) -> [UInt8] {
        headerBlock(
            [
                (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                ("content-type", "application/grpc"), ("te", "trailers"), ("workload.spiffe.io", "true"),
            ] + extra
        )
    }

    /// A whole gRPC call on `stream`: HEADERS, then one length-prefixed message of `message` bytes that ends the
    /// client's side. `declaredLength` lets the prefix claim more than is sent.
    static func call(
        path: String,
        stream: UInt32 = 1,
        message: [UInt8] = [],
        declaredLength: Int? = nil,
        extraHeaders: [(String, String)] = []
    ) -> [UInt8] {
        let length = UInt32(declaredLength ?? message.count)
        let body = [0] + withUnsafeBytes(of: length.bigEndian, Array.init) + message
        return frame(type: 0x1, flags: 0x4, stream: stream, payload: requestHeaders(path: path, extra: extraHeaders))
            + frame(type: 0x0, flags: 0x1, stream: stream, payload: body)
    }
}
