public import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
public import Logging
public import NIOCertificateReloading
import NIOCore
import NIOSSL
public import SPIFFE
import Synchronization

/// The SPIFFE Broker Endpoint (incubating): the Broker API over gRPC with mutual TLS on a Unix socket or TCP.
///
/// The endpoint presents the agent's broker-endpoint SVID (`identity`, renewed under open connections); a client
/// must present an X509-SVID whose chain `verifyClient` accepts (the trust domain's current bundle), and the handler
/// then requires its SPIFFE ID to be an authorized broker. A client without a valid SVID never completes the
/// handshake.
public struct BrokerServer: Sendable {
    /// What one client can hold of the endpoint.
    public struct Limits: Sendable, Equatable {
        /// Connections held at once, before and after the handshake: beyond it new ones are closed as they are
        /// accepted, so clients that never finish a handshake cannot take the agent's descriptors.
        public var maxConnections: Int
        /// A connection with no open call for this long is closed.
        public var idleTimeout: Duration
        /// Streams one connection may hold open (a broker multiplexes its workloads' calls on few connections).
        public var maxStreamsPerConnection: Int
        /// Broker API requests are small: a reference and a few audiences.
        public var maxRequestSize: Int

        public static let defaults = Limits(
            maxConnections: 256,
            idleTimeout: .seconds(300),
            maxStreamsPerConnection: 1024,
            maxRequestSize: 64 << 10
        )

        /// A connection must finish its TLS handshake within 10 s, or within the idle timeout if that is shorter.
        public var handshakeTimeout: Duration { min(.seconds(10), idleTimeout) }

        public init(maxConnections: Int, idleTimeout: Duration, maxStreamsPerConnection: Int, maxRequestSize: Int) {
            self.maxConnections = maxConnections
            self.idleTimeout = idleTimeout
            self.maxStreamsPerConnection = maxStreamsPerConnection
            self.maxRequestSize = maxRequestSize
        }
    }

    /// Where the endpoint listens. Over TCP, references to local processes (PIDs) are refused: the Broker API
    /// standard forbids local references across network boundaries, and a TCP peer may be on another node.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        case unix(path: String)
        /// An IPv4 or IPv6 literal and a port.
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let path): "unix://\(path)"
            case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
            }
        }
    }

    public let address: Address
    public let limits: Limits
    let identity: any CertificateReloader
    let verifyClient: @Sendable ([Data]) -> Bool
    let handler: BrokerAPIHandler
    let logger: Logger

    public init(
        address: Address,
        limits: Limits = .defaults,
        identity: any CertificateReloader,
        verifyClient: @escaping @Sendable ([Data]) -> Bool,
        backend: any BrokerBackend,
        authorizedBrokers: Set<SPIFFEID>,
        logger: Logger
    ) {
        self.address = address
        self.limits = limits
        self.identity = identity
        self.verifyClient = verifyClient
        var handler = BrokerAPIHandler(backend: backend, authorizedBrokers: authorizedBrokers, logger: logger)
        if case .tcp = address { handler.servesLocalReferences = false }
        self.handler = handler
        self.logger = logger
    }

    /// Serves until cancelled; `onListening` runs once the socket accepts connections.
    public func run(onListening: @escaping @Sendable () -> Void = {}) async throws {
        let bindAddress: GRPCNIOTransportCore.SocketAddress
        switch address {
        case .unix(let path):
            let directory = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            bindAddress = .unixDomainSocket(path: path)
        case .tcp(let host, let port):
            bindAddress = host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        }
        let verify = verifyClient
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // gRPC asks an idle connection to go away; `IdleConnections` closes it if the client does not (or never
        // opened a call, which gRPC's timer does not count over TLS).
        config.connection.maxIdleTime = limits.idleTimeout
        config.http2.maxConcurrentStreams = limits.maxStreamsPerConnection
        config.rpc.maxRequestPayloadSize = limits.maxRequestSize
        let open = ConnectionCount(limit: limits.maxConnections)
        let handshakeTimeout = limits.handshakeTimeout
        let idleTimeout = limits.idleTimeout
        let idle = IdleConnections()
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
            idle.countCall(on: stream)
            return stream.eventLoop.makeSucceededVoidFuture()
        }
        let logger = logger
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            switch open.acquire() {
            case .admitted:
                channel.closeFuture.whenComplete { _ in open.release() }
                idle.watch(channel, closingAfter: TimeAmount(idleTimeout))
                // The handshake must finish within its deadline, well before the idle timeout of a slot-holder.
                do {
                    let tls = try channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
                    try channel.pipeline.syncOperations.addHandler(
                        HandshakeDeadline(timeout: TimeAmount(handshakeTimeout)),
                        position: .after(tls)
                    )
                } catch {
                    channel.close(promise: nil)
                }
            case .refused(let firstSinceFull):
                // Once per time the limit is reached: a flood of connections does not flood the log.
                if firstSinceFull {
                    logger.warning(
                        "broker connection refused: the endpoint holds its connection limit",
                        metadata: [LogKey.limit: "\(open.limit)"]
                    )
                }
                channel.close(promise: nil)
            }
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let transport = HTTP2ServerTransport.Posix(
            address: bindAddress,
            transportSecurity: try .mTLS(certificateReloader: identity) { tls in
                tls.clientCertificateVerification = .noHostnameVerification
                tls.customVerificationCallback = { certificates, promise in
                    let chain = certificates.compactMap { try? Data($0.toDERBytes()) }
                    if chain.count == certificates.count, verify(chain) {
                        promise.succeed(
                            .certificateVerified(VerificationMetadata(ValidatedCertificateChain(certificates)))
                        )
                    } else {
                        promise.succeed(.failed)
                    }
                }
            },
            config: config
        )
        let server = GRPCServer(transport: transport, services: [handler])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask {
                if try await transport.listeningAddress != nil {
                    logger.info("broker endpoint listening", metadata: [LogKey.socketPath: "\(address)"])
                    onListening()
                }
            }
        }
    }
}

/// How many broker connections are open, against a limit.
private final class ConnectionCount: Sendable {
    enum Admission {
        case admitted
        /// `firstSinceFull`: no connection was refused since the count was last below the limit.
        case refused(firstSinceFull: Bool)
    }

    private let state = Mutex((open: 0, refusing: false))
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() -> Admission {
        state.withLock { state in
            guard state.open < limit else {
                defer { state.refusing = true }
                return .refused(firstSinceFull: !state.refusing)
            }
            state.open += 1
            return .admitted
        }
    }

    func release() {
        state.withLock { state in
            state.open -= 1
            state.refusing = false
        }
    }
}
