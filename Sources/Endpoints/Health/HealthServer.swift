import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SPIFFE
import Synchronization

/// A small HTTP/1.1 server for operators: `/live`, `/ready` and `/metrics` (Prometheus text).
///
/// It answers from closures the agent supplies, so this module knows nothing of the cache or of Prometheus. Anyone
/// who can reach the port can connect, so it holds at most ``maximumConnections`` at once (more are closed as they
/// are accepted), and a connection that sends nothing for `requestTimeout` (10 s) is closed.
public final class HealthServer: Sendable {
    public static let maximumConnections = 32

    /// What the endpoints report.
    public struct Probes: Sendable {
        /// `/ready`: whether the agent serves, and why not.
        public var readiness: @Sendable () -> (ready: Bool, reason: String)
        /// `/metrics`: the Prometheus text exposition.
        public var metrics: @Sendable () -> String

        public init(
            readiness: @escaping @Sendable () -> (ready: Bool, reason: String),
            metrics: @escaping @Sendable () -> String
        ) {
            self.readiness = readiness
            self.metrics = metrics
        }
    }

    public let host: String
    public let port: Int
    let probes: Probes
    let logger: Logger
    /// How long a connection may send nothing before it is closed.
    let requestTimeout: Duration
    private let connections = Mutex(0)

    /// The paths of the two probes (`lanyard helper` lets its configuration choose them).
    let livenessPath: String
    let readinessPath: String

    public init(
        host: String,
        port: Int,
        probes: Probes,
        logger: Logger,
        requestTimeout: Duration = .seconds(10),
        livenessPath: String = "/live",
        readinessPath: String = "/ready"
    ) {
        self.livenessPath = livenessPath
        self.readinessPath = readinessPath
        self.host = host
        self.port = port
        self.probes = probes
        self.logger = logger
        self.requestTimeout = requestTimeout
    }

    /// Serves until cancelled; `onListening` gets the bound port (useful when `port` is 0).
    public func run(onListening: @Sendable (Int) -> Void = { _ in }) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { [requestTimeout] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(readTimeout: TimeAmount(requestTimeout))
                    )
                    try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        let boundPort = server.channel.localAddress?.port ?? port
        logger.info("health endpoints listening", metadata: [LogKey.healthListen: "\(host):\(boundPort)"])
        onListening(boundPort)
        do {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            let admitted = self.connections.withLock { count in
                                guard count < Self.maximumConnections else { return false }
                                count += 1
                                return true
                            }
                            guard admitted else {
                                // Closed through its async wrapper: NIO traps on a wrapper dropped unfinished.
                                group.addTask { try? await connection.executeThenClose { _, _ in } }
                                continue
                            }
                            group.addTask {
                                await self.serve(connection)
                                self.connections.withLock { $0 -= 1 }
                            }
                        }
                    }
                }
            } onCancel: {
                server.channel.close(promise: nil)
            }
        } catch  where Task.isCancelled {
            // Closing the listener is how the server stops.
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var path: String? = nil
                for try await part in inbound {
                    switch part {
                    case .head(let head): path = head.uri
                    case .body: continue
                    case .end:
                        let (status, body, type) = respond(to: path ?? "/")
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: type)
                        headers.add(name: "content-length", value: String(body.utf8.count))
                        headers.add(name: "connection", value: "close")
                        try await outbound.write(
                            .head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))
                        )
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                        try await outbound.write(.end(nil))
                        return
                    }
                }
            }
        } catch {
            logger.debug("health connection ended", metadata: [LogKey.error: "\(error)"])
        }
    }

    func respond(to uri: String) -> (HTTPResponseStatus, String, String) {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch path {
        case livenessPath:
            return (.ok, "live\n", "text/plain; charset=utf-8")
        case readinessPath:
            let (ready, reason) = probes.readiness()
            return (ready ? .ok : .serviceUnavailable, reason + "\n", "text/plain; charset=utf-8")
        case "/metrics":
            return (.ok, probes.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        default:
            return (
                .notFound, "not found: try \(livenessPath), \(readinessPath) or /metrics\n", "text/plain; charset=utf-8"
            )
        }
    }
}

/// Closes a connection that sent nothing for its server's request timeout (health and admin endpoints).
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
