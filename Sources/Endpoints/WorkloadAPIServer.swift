import Foundation
public import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Serves the Workload API on a Unix socket, with the peer-credential plumbing installed on its listener.
///
/// The socket's directory is created 0755 if missing, and the socket is bound under a umask that makes it
/// `srwxrwxrwx` from the first instant: any local process may connect, which the Workload API requires, and
/// identity comes from the kernel, not from file permissions. A stale socket file is replaced; the file is
/// removed when the server stops.
public struct WorkloadAPIServer: Sendable {
    public let socketPath: String
    let handler: WorkloadAPIHandler
    let logger: Logger

    public init(socketPath: String, backend: any WorkloadAPIBackend, logger: Logger) {
        self.socketPath = socketPath
        self.handler = WorkloadAPIHandler(backend: backend, logger: logger)
        self.logger = logger
    }

    /// Serves until cancelled. `onListening` runs once the socket accepts connections.
    public func run(onListening: @Sendable @escaping () -> Void = {}) async throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755]
            )
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = PeerCredentialHandler.installOnStream
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath),
            transportSecurity: .plaintext,
            config: config
        )
        let server = GRPCServer(transport: transport, services: [handler])
        defer { unlink(socketPath) }
        try await withThrowingDiscardingTaskGroup { group in
            // The umask is process-wide, so it is set only around the bind and restored once listening.
            let previous = umask(0o000)
            group.addTask { try await server.serve() }
            let address = try await transport.listeningAddress
            umask(previous)
            logger.info("workload api listening", metadata: ["socket": "\(address)"])
            onListening()
        }
    }
}
