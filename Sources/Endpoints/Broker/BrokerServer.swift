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
    /// Connections held at once, before and after the handshake: beyond it new ones are closed as they are accepted,
    /// so clients that never finish a handshake cannot take the agent's descriptors.
    public static let maximumConnections = 256
    /// A connection with no call for this long is closed.
    public static let idleTimeout: Duration = .seconds(300)
    /// Streams one connection may hold open (a broker multiplexes its workloads' calls on few connections).
    public static let maximumStreamsPerConnection = 1024
    /// Broker API requests are small: a reference and a few audiences.
    public static let maximumRequestSize = 64 << 10

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
    let identity: any CertificateReloader
    let verifyClient: @Sendable ([Data]) -> Bool
    let handler: BrokerAPIHandler
    let logger: Logger

    public init(
        address: Address,
        identity: any CertificateReloader,
        verifyClient: @escaping @Sendable ([Data]) -> Bool,
        backend: any BrokerBackend,
        authorizedBrokers: Set<SPIFFEID>,
        logger: Logger
    ) {
        self.address = address
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
        config.connection.maxIdleTime = Self.idleTimeout
        config.http2.maxConcurrentStreams = Self.maximumStreamsPerConnection
        config.rpc.maxRequestPayloadSize = Self.maximumRequestSize
        let open = ConnectionCount(limit: Self.maximumConnections)
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            if open.acquire() {
                channel.closeFuture.whenComplete { _ in open.release() }
            } else {
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
    private let count = Mutex(0)
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func release() {
        count.withLock { $0 -= 1 }
    }
}
