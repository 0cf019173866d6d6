import CLinux
import Foundation
public import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// One `GET` to a container runtime's Engine API over its Unix socket, bounded in time and size.
///
/// The socket is reached only through a file that is itself a socket (never a symlink) owned by `owner`: root for
/// the configured system runtimes, the user for a rootless Podman socket under a path that user controls. The file
/// is pinned before the check and connected through the pin, so it cannot be swapped in between
/// (`lanyard_connect_owned_socket`). One request per connection (`Connection: close`), so any HTTP/1.1 framing
/// (`Content-Length`, chunked, or until close) ends the answer.
struct EngineAPIClient: Sendable {
    let socketPath: String
    let owner: UInt32
    /// `1.41` makes paths `/v1.41/…`; nil lets the runtime pick.
    let apiVersion: String?
    let timeout: Duration
    var maximumResponseSize = 4 << 20

    /// The runtime's description of container `id`, or nil when it does not know it (404).
    func inspect(_ id: String) throws(AttestationError) -> ContainerInspection? {
        let path = (apiVersion.map { "/v\($0)" } ?? "") + "/containers/\(id)/json"
        let (status, body) = try get(path)
        switch status {
        case 200: return try ContainerInspection(json: body)
        case 404: return nil
        default:
            throw AttestationError(
                .containerRuntimeUnavailable,
                "\(socketPath) answered GET \(path) with status \(status)"
            )
        }
    }

    /// Status and body of `GET path`.
    func get(_ path: String) throws(AttestationError) -> (status: Int, body: [UInt8]) {
        let deadline = ContinuousClock.now + timeout
        let descriptor = try connect()
        defer { close(descriptor) }
        let request = Array(
            "GET \(path) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: lanyard\r\nConnection: close\r\n\r\n".utf8
        )
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw failure("cannot send the request: \(String(cString: strerror(errno)))") }
            sent += count
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            if let complete = try HTTPResponse(parsing: response, socketPath: socketPath) { return complete.answer }
            guard ContinuousClock.now < deadline else {
                throw AttestationError(.timedOut, "\(socketPath) did not answer within \(timeout)")
            }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 {
                guard let complete = try HTTPResponse(parsing: response, socketPath: socketPath, closed: true) else {
                    throw failure("closed the connection before a complete answer")
                }
                return complete.answer
            }
            guard count > 0 else {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw AttestationError(.timedOut, "\(socketPath) did not answer within \(timeout)")
                }
                throw failure("cannot read the answer: \(String(cString: strerror(errno)))")
            }
            response += buffer[..<count]
            guard response.count <= maximumResponseSize else {
                throw failure("answered with more than \(maximumResponseSize) bytes")
            }
        }
    }

    private func connect() throws(AttestationError) -> Int32 {
        var reason: Int32 = 0
        var actualOwner: UInt32 = 0
        var error: Int32 = 0
        let milliseconds = Int32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        let descriptor = lanyard_connect_owned_socket(
            socketPath,
            owner,
            max(1, milliseconds),
            &reason,
            &actualOwner,
            &error
        )
        guard descriptor < 0 else { return descriptor }
        switch reason {
        case 2: throw failure("is not a socket (a symlink is not followed)")
        case 3: throw failure("is owned by uid \(actualOwner), not \(owner)")
        default: throw failure("cannot be reached: \(String(cString: strerror(error)))")
        }
    }

    private func failure(_ message: String) -> AttestationError {
        AttestationError(.containerRuntimeUnavailable, "\(socketPath) \(message)")
    }
}

/// A complete HTTP/1.1 answer in a buffer: status line, headers, and the body framed by `Content-Length`, chunked
/// encoding, or the end of the connection. Public for the fuzzer: a rootless user's socket chooses these bytes.
public struct HTTPResponse {
    public let answer: (status: Int, body: [UInt8])

    /// Nil while `bytes` holds only part of the answer (and the connection is still open).
    public init?(parsing bytes: [UInt8], socketPath: String, closed: Bool = false) throws(AttestationError) {
        func malformed(_ what: String) -> AttestationError {
            AttestationError(.containerRuntimeUnavailable, "\(socketPath) answered with \(what)")
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headerEnd = bytes.firstRange(of: separator) else {
            if closed || bytes.count > 64 << 10 { throw malformed("no complete HTTP header") }
            return nil
        }
        let lines = String(decoding: bytes[..<headerEnd.lowerBound], as: UTF8.self).split(separator: "\r\n")
        let statusFields = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusFields.count >= 2, statusFields[0].hasPrefix("HTTP/1."), let status = Int(statusFields[1]),
            (100...599).contains(status)
        else { throw malformed("a malformed status line") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw malformed("a malformed header line") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces
            )
        }
        let body = Array(bytes[headerEnd.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            guard let decoded = try Self.dechunk(body, malformed: malformed) else {
                if closed { throw malformed("a chunked body cut short") }
                return nil
            }
            answer = (status, decoded)
        } else if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0 else { throw malformed("a malformed Content-Length") }
            guard body.count >= length else {
                if closed { throw malformed("a body shorter than its Content-Length") }
                return nil
            }
            answer = (status, Array(body.prefix(length)))
        } else {
            guard closed else { return nil }
            answer = (status, body)
        }
    }

    /// The body of a chunked encoding, or nil while the last chunk has not arrived.
    private static func dechunk(
        _ bytes: [UInt8],
        malformed: (String) -> AttestationError
    ) throws(AttestationError) -> [UInt8]? {
        var decoded: [UInt8] = []
        var position = 0
        while true {
            guard let lineEnd = bytes[position...].firstRange(of: [13, 10]) else { return nil }
            let sizeText =
                String(decoding: bytes[position..<lineEnd.lowerBound], as: UTF8.self)
                .split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0,
                size < 1 << 30
            else { throw malformed("a malformed chunk size") }
            let start = lineEnd.upperBound
            if size == 0 { return decoded }
            guard bytes.count >= start + size + 2 else { return nil }
            decoded += bytes[start..<start + size]
            position = start + size + 2
        }
    }
}
