public import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
public import Logging
public import NIOCertificateReloading
import NIOCore
import NIOSSL
public import SPIFFE

/// The SPIFFE Broker Endpoint (incubating): the Broker API over gRPC with mutual TLS on a Unix socket or TCP.
///
/// The endpoint presents the agent's broker-endpoint SVID (`identity`, renewed under open connections); a client
/// must present an X509-SVID whose chain `verifyClient` accepts (the trust domain's current bundle), and the handler
/// then requires its SPIFFE ID to be an authorized broker. A client without a valid SVID never completes the
/// handshake.
public struct BrokerServer: Sendable {
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
            }
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
