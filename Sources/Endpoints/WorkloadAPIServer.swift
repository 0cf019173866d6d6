import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the Workload API and Envoy SDS on one Unix socket, with the peer-credential plumbing installed on its
/// listener (both services read the caller from it).
///
/// The socket's directory is created 0755 if missing, and the socket is bound under a umask that makes it
/// `srwxrwxrwx` from the first instant: any local process may connect, which the Workload API requires, and
/// identity comes from the kernel, not from file permissions. A stale socket file is replaced; the file is
/// removed when the server stops.
public final class WorkloadAPIServer: Sendable {
    public let socketPath: String
    let logger: Logger
    let transport: HTTP2ServerTransport.Posix
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    public init(
        socketPath: String,
        backend: any WorkloadAPIBackend,
        logger: Logger,
        allowUnauthenticatedVerifiers: Bool = false,
        sds: SDSConfig = SDSConfig()
    ) {
        self.socketPath = socketPath
        self.logger = logger
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = PeerCredentialHandler.installOnStream
        transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath),
            transportSecurity: .plaintext,
            config: config
        )
        let handler = WorkloadAPIHandler(
            backend: backend,
            logger: logger,
            allowUnauthenticatedVerifiers: allowUnauthenticatedVerifiers
        )
        var services: [any RegistrableRPCService] = [handler]
        if sds.isEnabled { services.append(SDSHandler(backend: backend, config: sds, logger: logger)) }
        server = GRPCServer(transport: transport, services: services)
    }

    /// Serves until ``beginShutdown()`` or cancellation. `onListening` runs once the socket accepts connections.
    public func run(onListening: @Sendable @escaping () -> Void = {}) async throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755]
            )
        }
        defer { unlink(socketPath) }
        try await withThrowingDiscardingTaskGroup { group in
            // The umask is process-wide, so it is set only around the bind and restored once listening.
            let previous = umask(0o000)
            group.addTask { [server] in
                do {
                    try await server.serve()
                } catch  where Task.isCancelled {
                    // Cancellation is how a stop without draining ends; it is not a failure.
                }
            }
            let address = try await transport.listeningAddress
            umask(previous)
            logger.info("workload api listening", metadata: ["socket": "\(address)"])
            onListening()
        }
    }

    /// Stops accepting calls and lets the ones in flight finish.
    public func beginShutdown() {
        server.beginGracefulShutdown()
    }
}
