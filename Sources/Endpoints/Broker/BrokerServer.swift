public import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
public import NIOCertificateReloading
import NIOCore
import NIOSSL
public import SPIFFE

/// The SPIFFE Broker Endpoint (incubating): the Broker API over gRPC with mutual TLS on a Unix socket.
///
/// The endpoint presents the agent's broker-endpoint SVID (`identity`, renewed under open connections); a client
/// must present an X509-SVID whose chain `verifyClient` accepts (the trust domain's current bundle), and the handler
/// then requires its SPIFFE ID to be an authorized broker. A client without a valid SVID never completes the
/// handshake.
public struct BrokerServer: Sendable {
    public let socketPath: String
    let identity: any CertificateReloader
    let verifyClient: @Sendable ([Data]) -> Bool
    let handler: BrokerAPIHandler
    let logger: Logger

    public init(
        socketPath: String,
        identity: any CertificateReloader,
        verifyClient: @escaping @Sendable ([Data]) -> Bool,
        backend: any BrokerBackend,
        authorizedBrokers: Set<SPIFFEID>,
        logger: Logger
    ) {
        self.socketPath = socketPath
        self.identity = identity
        self.verifyClient = verifyClient
        self.handler = BrokerAPIHandler(backend: backend, authorizedBrokers: authorizedBrokers, logger: logger)
        self.logger = logger
    }

    /// Serves until cancelled; `onListening` runs once the socket accepts connections.
    public func run(onListening: @escaping @Sendable () -> Void = {}) async throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let verify = verifyClient
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath),
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
                    logger.info("broker endpoint listening", metadata: [LogKey.socketPath: "\(socketPath)"])
                    onListening()
                }
            }
        }
    }
}
