import CLinux
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import SPIFFE
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The admin endpoint: HTTP/1.1 with JSON bodies on a Unix socket, versioned by path (`/v1/…`), for the uids in
/// `admin.authorized_uids` only.
///
/// The socket file is 0600, but that is not what guards it: every connection is authorized by the kernel's
/// `SO_PEERCRED` of the process that connected, pinned as a Workload API caller is (a descriptor passed on, or a
/// process that exited or changed credentials since, is refused) and re-checked before each request. Anyone else
/// gets 403 with code `PERMISSION_DENIED`. At most ``maximumConnections`` at once, one request each, a request body
/// of at most ``maximumBodyBytes``, and 10 s to send it.
public final class AdminServer: Sendable {
    public static let maximumConnections = 16
    public static let maximumBodyBytes = 4096
    static let requestTimerName = "admin-request-timer"

    /// One request, from a caller already authorized.
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let query: [String: String]
        public let body: Data
        public let caller: WorkloadProcess
    }

    /// A JSON answer; `status` is the HTTP status.
    public struct Response: Sendable {
        public let status: Int
        public let body: Data

        public init(status: Int, body: Data) {
            self.status = status
            self.body = body
        }

        /// An error answer: `{"code": …, "message": …}`.
        public static func error(_ status: Int, code: String, _ message: String) -> Response {
            let object = ["code": code, "message": message]
            let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return Response(status: status, body: body)
        }
    }

    public let socketPath: String
    let authorizedUIDs: Set<UInt32>
    let handler: @Sendable (Request) async -> Response
    let pin: @Sendable (WorkloadProcess, PeerProcess) -> any CallerPin
    let logger: Logger
    let requestTimeout: Duration
    /// The connections being served, closed at once when the server stops (a client that sends nothing must not
    /// hold up the agent's shutdown until its request timeout).
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(
        socketPath: String,
        authorizedUIDs: Set<UInt32>,
        pin: @escaping @Sendable (WorkloadProcess, PeerProcess) -> any CallerPin,
        logger: Logger,
        requestTimeout: Duration = .seconds(10),
        handler: @escaping @Sendable (Request) async -> Response
    ) {
        self.socketPath = socketPath
        self.authorizedUIDs = authorizedUIDs
        self.pin = pin
        self.logger = logger
        self.requestTimeout = requestTimeout
        self.handler = handler
    }

    /// A connection's peer as the kernel reported it at accept.
    private typealias Peer = (process: WorkloadProcess, pin: any CallerPin)?
    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Serves until cancelled; removes the socket file when it stops.
    public func run(onListening: @Sendable () -> Void = {}) async throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755]
            )
        }
        let pin = pin
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) {
                [requestTimeout] (channel: any Channel) -> EventLoopFuture<(Connection, Peer)> in
                // The pipeline first, synchronously, so nothing the client sends meanwhile is lost; the credentials
                // (never a failure: nil when unreadable) are read from the socket alongside.
                let wrapped: Connection
                do {
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(readTimeout: TimeAmount(requestTimeout)),
                        name: Self.requestTimerName
                    )
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    wrapped = try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return PeerCredentialHandler.peer(of: channel).map { found -> (Connection, Peer) in
                    guard let (process, descriptor) = found else { return (wrapped, nil) }
                    return (wrapped, (process, pin(process, descriptor)))
                }
            }
        chmod(socketPath, 0o600)
        logger.info("admin endpoint listening", metadata: [LogKey.socketPath: "\(socketPath)"])
        onListening()
        defer { unlink(socketPath) }
        do {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { accepted in
                        for try await (connection, peer) in accepted {
                            let key = ObjectIdentifier(connection.channel)
                            let admitted = open.withLock { open in
                                guard open.count < Self.maximumConnections else { return false }
                                open[key] = connection.channel
                                return true
                            }
                            guard admitted else {
                                group.addTask { try? await connection.executeThenClose { _, _ in } }
                                continue
                            }
                            group.addTask {
                                await self.serve(connection, peer: peer)
                                _ = self.open.withLock { $0.removeValue(forKey: key) }
                            }
                        }
                    }
                }
            } onCancel: {
                server.channel.close(promise: nil)
                for channel in open.withLock({ Array($0.values) }) { channel.close(promise: nil) }
            }
        } catch  where Task.isCancelled {
            // Closing the listener is how the server stops.
        }
    }

    private func serve(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>,
        peer: Peer
    ) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead? = nil
                var body = Data()
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let received): head = received
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > Self.maximumBodyBytes {
                            tooLarge = true
                        } else {
                            body.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        // The request is in: the answer may take longer than a request may (explain waits for the
                        // attestors, which have their own bounds).
                        try? await connection.channel.pipeline.removeHandler(name: Self.requestTimerName).get()
                        let response: Response
                        if tooLarge {
                            response = .error(
                                413,
                                code: "INVALID_ARGUMENT",
                                "request body over \(Self.maximumBodyBytes) bytes"
                            )
                        } else {
                            response = await respond(to: head, body: body, peer: peer)
                        }
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: "application/json")
                        headers.add(name: "content-length", value: String(response.body.count))
                        headers.add(name: "connection", value: "close")
                        try await outbound.write(
                            .head(
                                HTTPResponseHead(
                                    version: .http1_1,
                                    status: HTTPResponseStatus(statusCode: response.status),
                                    headers: headers
                                )
                            )
                        )
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        try await outbound.write(.end(nil))
                        return
                    }
                }
            }
        } catch {
            logger.debug("admin connection ended", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// Authorizes the connection's caller, then hands the request to the handler.
    private func respond(to head: HTTPRequestHead?, body: Data, peer: Peer) async -> Response {
        guard let peer else {
            return .error(403, code: "PERMISSION_DENIED", "the caller's credentials are unavailable")
        }
        guard authorizedUIDs.contains(peer.process.uid) else {
            logger.warning(
                "admin call refused",
                metadata: [LogKey.callerPID: "\(peer.process.pid)", LogKey.callerUID: "\(peer.process.uid)"]
            )
            return .error(403, code: "PERMISSION_DENIED", "uid \(peer.process.uid) is not in admin.authorized_uids")
        }
        do {
            try peer.pin.verify()
        } catch {
            return .error(403, code: "PERMISSION_DENIED", "the caller changed or exited since it connected")
        }
        guard let head else { return .error(400, code: "INVALID_ARGUMENT", "no request") }
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let field = pair.split(separator: "=", maxSplits: 1)
                let name = String(field[0]).removingPercentEncoding ?? String(field[0])
                let value = field.count == 2 ? (String(field[1]).removingPercentEncoding ?? String(field[1])) : ""
                query[name] = value
            }
        }
        return await handler(
            Request(
                method: head.method.rawValue,
                path: parts.first.map(String.init) ?? "/",
                query: query,
                body: body,
                caller: peer.process
            )
        )
    }
}
