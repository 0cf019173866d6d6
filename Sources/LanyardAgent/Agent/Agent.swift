import Attestation
import Endpoints
import Foundation
import IdentityCache
public import Logging
import SPIFFE
import ServiceLifecycle
import UnixSignals
import Upstream

/// The composition root: builds the authority, cache, attestors and endpoints from the configuration and runs
/// them in one service group until SIGTERM or SIGINT.
public struct Agent: Sendable {
    public let config: AgentConfig
    let logger: Logger

    public init(config: AgentConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Runs until a shutdown signal; `onReady` runs once the socket listens and every SVID is in the cache.
    public func run(onReady: @escaping @Sendable () -> Void = {}) async throws {
        let now: @Sendable () -> Date = Date.init
        let authority = try LocalAuthority(
            config: LocalAuthority.Config(
                trustDomain: config.trustDomain,
                dataDirectory: config.dataDirectory,
                caKeyType: config.caKeyType,
                caTTL: config.caTTL,
                x509SVIDTTL: config.x509SVIDTTL,
                jwtSVIDTTL: config.jwtSVIDTTL
            ),
            now: now()
        )
        let upstream = LocalUpstream(
            authority: authority,
            entries: config.entries,
            federatedBundles: config.federatedBundles
        )
        let cache = IdentityCache()
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger, now: now)
        // Prime the cache before the socket opens, so the first caller already finds its SVIDs.
        let minted = await rotator.syncOnce(at: now())
        logger.info(
            "identity cache primed",
            metadata: [
                "entries": "\(config.entries.count)", "svids": "\(minted)", "trust_domain": "\(config.trustDomain)",
            ]
        )
        var attestors: [any WorkloadAttestor] = []
        if config.unixAttestorEnabled {
            attestors.append(
                UnixAttestor(
                    config: .init(
                        discoverWorkloadPath: config.discoverWorkloadPath,
                        workloadSizeLimit: config.workloadSizeLimit
                    )
                )
            )
        }
        let backend = WorkloadBackend(
            cache: cache,
            attestors: attestors,
            upstream: upstream,
            trustDomain: config.trustDomain,
            logger: logger,
            procRoot: "/proc",
            now: now
        )
        let server = WorkloadAPIServer(
            socketPath: config.socketPath,
            backend: backend,
            logger: logger,
            allowUnauthenticatedVerifiers: config.allowUnauthenticatedVerifiers,
            sds: config.sds
        )
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: RotationService(rotator: rotator)),
                    .init(service: EndpointsService(server: server, cache: cache, onListening: onReady)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("lanyard stopped")
    }
}

/// The rotation loop as a lifecycle service.
struct RotationService: Service, CustomStringConvertible {
    var description: String { "svid-rotation" }
    let rotator: SVIDRotator

    func run() async throws {
        await cancelWhenGracefulShutdown { await rotator.run() }
    }
}

/// The Workload API socket as a lifecycle service; on shutdown it ends every open stream and removes the socket.
struct EndpointsService: Service, CustomStringConvertible {
    var description: String { "workload-api" }
    let server: WorkloadAPIServer
    let cache: IdentityCache
    let onListening: @Sendable () -> Void

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run(onListening: onListening)
        } onGracefulShutdown: {
            // End every stream cleanly first (clients see status OK, not a reset), then stop accepting.
            cache.finishAll()
            server.beginShutdown()
        }
    }
}
