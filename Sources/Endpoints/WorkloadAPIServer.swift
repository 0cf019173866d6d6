import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
import SPIFFE
public import Timing

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the Workload API and Envoy SDS on one Unix socket, with the peer-credential plumbing installed on its
/// listener (both services read the caller from it).
///
/// The socket's directory is created 0755 if missing. The socket is bound inside a private (0700) directory next to
/// its final path, made world-connectable there, and renamed into place: no moment exists where it is reachable
/// with the wrong mode, and no process-wide umask is touched. Any local process may then connect, which the
/// Workload API requires; identity comes from the kernel, not from file permissions. A stale socket file is
/// replaced by the rename; the file is removed when the server stops.
public final class WorkloadAPIServer: Sendable {
    public let socketPath: String
    /// A listening socket inherited from systemd (socket activation); nil when the server binds `socketPath`.
    public let activatedDescriptor: Int?
    /// Where the socket is bound before it is renamed to `socketPath`.
    let bindDirectory: String
    let logger: Logger
    let transport: HTTP2ServerTransport.Posix
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let limiter: CallerLimiter
    let callers: ConnectedCallers

    /// Connections open now, all callers together.
    public var openConnections: Int { limiter.totalConnections }

    /// Calls being answered now by method (open streams, mostly), for `lanyard status`.
    public var openCallsByMethod: [String: Int] { openCalls.current }
    private let openCalls = OpenCalls()

    /// Connections and calls each uid holds now, for `lanyard status`.
    public var callerUsage: [UInt32: (connections: Int, calls: Int)] { limiter.usage() }

    /// The largest request message accepted, for both services: Workload API requests are a few hundred bytes, and
    /// Envoy's DiscoveryRequest carries its node metadata (a few KiB for an Istio sidecar).
    public static let maximumRequestSize = 256 << 10

    public init(
        socketPath: String,
        backend: any WorkloadAPIBackend,
        logger: Logger,
        allowUnauthenticatedVerifiers: Bool = false,
        sds: SDSConfig = SDSConfig(),
        limits: CallerLimits = .defaults,
        idleTimeout: Duration? = .seconds(300),
        clock: any AgentClock = SystemClock(),
        activatedDescriptor: Int? = nil
    ) {
        self.socketPath = socketPath
        self.activatedDescriptor = activatedDescriptor
        let parent = (socketPath as NSString).deletingLastPathComponent
        self.bindDirectory =
            (parent.isEmpty ? "." : parent) + "/.lanyard-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.logger = logger
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = Self.maximumRequestSize
        // A connection with no call open for this long is closed: idle connections hold descriptors for nothing.
        // gRPC asks the client to go away first; ConnectedCallers closes the socket if it does not.
        config.connection.maxIdleTime = idleTimeout
        let limiter = CallerLimiter(limits: limits, logger: logger, clock: clock)
        let callers = ConnectedCallers()
        self.limiter = limiter
        self.callers = callers
        config.channelDebuggingCallbacks.onAcceptTCPConnection = PeerCredentialHandler.admitConnection(
            limiter: limiter,
            callers: callers,
            idleTimeout: idleTimeout,
            pin: { credentials, process in backend.pin(credentials, process: process) }
        )
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = PeerCredentialHandler.installOnStream(
            limiter: limiter,
            callers: callers
        )
        if let activatedDescriptor {
            transport = HTTP2ServerTransport.Posix(
                listeningSocketDescriptor: activatedDescriptor,
                transportSecurity: .plaintext,
                config: config
            )
        } else {
            transport = HTTP2ServerTransport.Posix(
                address: .unixDomainSocket(path: bindDirectory + "/s"),
                transportSecurity: .plaintext,
                config: config
            )
        }
        let handler = WorkloadAPIHandler(
            backend: backend,
            callers: callers,
            logger: logger,
            allowUnauthenticatedVerifiers: allowUnauthenticatedVerifiers,
            clock: clock
        )
        var services: [any RegistrableRPCService] = [handler]
        if sds.isEnabled {
            services.append(SDSHandler(backend: backend, callers: callers, config: sds, logger: logger))
        }
        server = GRPCServer(
            transport: transport,
            services: services,
            interceptors: [MetricsInterceptor(openCalls: openCalls)]
        )
    }

    /// Serves until ``beginShutdown()`` or cancellation. `onListening` runs once the socket accepts connections.
    public func run(onListening: @Sendable @escaping () -> Void = {}) async throws {
        if activatedDescriptor != nil {
            // The socket belongs to systemd, which created it with the unit's mode and removes it.
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { [server] in
                    do {
                        try await server.serve()
                    } catch  where Task.isCancelled {}
                }
                let address = try await transport.listeningAddress
                logger.info(
                    "workload api serving on a socket from systemd",
                    metadata: [LogKey.socketPath: "\(address)"]
                )
                onListening()
            }
            return
        }
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755]
            )
        }
        try FileManager.default.createDirectory(
            atPath: bindDirectory,
            withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o700]
        )
        defer {
            unlink(bindDirectory + "/s")
            rmdir(bindDirectory)
            unlink(socketPath)
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [server] in
                do {
                    try await server.serve()
                } catch  where Task.isCancelled {
                    // Cancellation is how a stop without draining ends; it is not a failure.
                }
            }
            _ = try await transport.listeningAddress
            guard chmod(bindDirectory + "/s", 0o777) == 0, rename(bindDirectory + "/s", socketPath) == 0 else {
                throw WorkloadAPIError(
                    .unavailable,
                    "cannot place the socket at \(socketPath): \(String(cString: strerror(errno)))"
                )
            }
            rmdir(bindDirectory)
            logger.info("workload api listening", metadata: [LogKey.socketPath: "\(socketPath)"])
            onListening()
        }
    }

    /// Stops accepting calls and lets the ones in flight finish.
    public func beginShutdown() {
        server.beginGracefulShutdown()
    }
}
