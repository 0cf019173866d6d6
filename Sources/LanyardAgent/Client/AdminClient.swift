public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The client of the admin endpoint (`lanyard status`, `explain`, `entries`, `log-level`): one HTTP/1.1 request
/// per connection over the Unix socket, blocking, bounded by a timeout.
public struct AdminClient: Sendable {
    public let socketPath: String
    public var timeout: TimeInterval = 30

    public init(socketPath: String = AdminSettings.defaultSocketPath) {
        self.socketPath = socketPath
    }

    /// A refusal or failure the endpoint reported (`{"code": …, "message": …}`), or one reaching it.
    public struct Failure: Error, CustomStringConvertible {
        public let code: String
        public let message: String
        public var description: String { "\(code): \(message)" }
    }

    public func status() throws -> StatusReport { try decode(request("GET", "/v1/status")) }

    public func entries() throws -> EntriesReport { try decode(request("GET", "/v1/entries")) }

    public func explain(pid: Int32) throws -> ExplainReport { try decode(request("GET", "/v1/explain?pid=\(pid)")) }

    public func explain(uid: UInt32, gid: UInt32) throws -> ExplainReport {
        try decode(request("GET", "/v1/explain?uid=\(uid)&gid=\(gid)"))
    }

    /// The running log level, after setting it to `level` when given; with the previous one when set.
    public func logLevel(set level: String?) throws -> (level: String, previous: String?) {
        let body = try level.map { try JSONSerialization.data(withJSONObject: ["level": $0]) }
        let data = try request(level == nil ? "GET" : "PUT", "/v1/log-level", body: body)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: String], let now = object["level"]
        else { throw Failure(code: "INTERNAL", message: "unexpected answer from the admin endpoint") }
        return (now, object["previous"])
    }

    /// The raw JSON of one call; an error answer is thrown as ``Failure``.
    public func request(_ method: String, _ path: String, body: Data? = nil) throws -> Data {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else {
            throw Failure(code: "UNAVAILABLE", message: "socket: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(code: "INVALID_ARGUMENT", message: "socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw Failure(
                code: "UNAVAILABLE",
                message: "cannot connect to the admin endpoint \(socketPath): \(String(cString: strerror(errno)))"
            )
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: lanyard\r\nConnection: close\r\n"
        head += "Content-Length: \(body?.count ?? 0)\r\n\r\n"
        try send(Data(head.utf8) + (body ?? Data()), on: descriptor)
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { break }
            // A signal (a debugger, a terminal resize) interrupts a receive with a timeout: not an answer.
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw Failure(code: "UNAVAILABLE", message: "reading the answer: \(String(cString: strerror(errno)))")
            }
            received.append(contentsOf: buffer[0..<count])
            guard received.count <= 64 << 20 else { throw Failure(code: "INTERNAL", message: "answer over 64 MiB") }
        }
        guard let split = received.range(of: Data("\r\n\r\n".utf8)),
            let statusLine = String(data: received[..<split.lowerBound], encoding: .utf8)?
                .split(separator: "\r\n").first,
            let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { throw Failure(code: "INTERNAL", message: "malformed answer from the admin endpoint") }
        let payload = Data(received[split.upperBound...])
        guard status == 200 else {
            let object = try? JSONSerialization.jsonObject(with: payload) as? [String: String]
            throw Failure(
                code: object?["code"] ?? "HTTP_\(status)",
                message: object?["message"] ?? String(decoding: payload, as: UTF8.self)
            )
        }
        return payload
    }

    private func send(_ data: Data, on descriptor: Int32) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0 && errno == EINTR { continue }
                guard sent > 0 else {
                    throw Failure(
                        code: "UNAVAILABLE",
                        message: "sending the request: \(String(cString: strerror(errno)))"
                    )
                }
                offset += sent
            }
        }
    }

    private func decode<Report: Decodable>(_ data: Data) throws -> Report {
        try AdminAPI.decoder.decode(Report.self, from: data)
    }

    /// The encoder of the endpoint's documents, for `--json` output identical to what the endpoint sends.
    public static var encoder: JSONEncoder { AdminAPI.encoder }
}
