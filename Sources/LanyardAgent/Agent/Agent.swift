import Attestation
import Endpoints
import Foundation
import IdentityCache
public import Logging
import Metrics
public import Prometheus
import SPIFFE
import SPIFFECrypto
import ServiceLifecycle
import Synchronization
public import Timing
import UnixSignals
import Upstream

/// The composition root: builds the authority, cache, attestors and endpoints from the configuration and runs
/// them in one service group until SIGTERM or SIGINT, reloading on SIGHUP and talking to systemd throughout.
public struct Agent: Sendable {
    public let config: AgentConfig
    /// The file `config` came from, re-read on SIGHUP; nil disables reload (tests that build a config in memory).
    public let configPath: String?
    let logger: Logger
    let logLevel: LogLevelBox?
    /// Where audit records go; nil: JSON lines on standard error, or the journal under systemd.
    let auditLogger: Logger?
    /// How long services may take to stop once cancelled before the process aborts (swift-service-lifecycle's
    /// `maximumCancellationDuration`): 5 s under systemd; in-process test agents on a loaded machine get longer, so
    /// a slow stop fails its test instead of aborting the whole test process.
    let cancellationLimit: Duration
    /// Where swift-metrics records go, for `/metrics`; nil when this process did not bootstrap metrics.
    let metricsRegistry: PrometheusCollectorRegistry?
    /// Every wait and every "now" of the agent (tests pass a manual clock).
    let clock: any AgentClock

    public init(
        config: AgentConfig,
        configPath: String? = nil,
        logger: Logger,
        logLevel: LogLevelBox? = nil,
        auditLogger: Logger? = nil,
        cancellationLimit: Duration = .seconds(5),
        metricsRegistry: PrometheusCollectorRegistry? = nil,
        clock: any AgentClock = SystemClock()
    ) {
        self.config = config
        self.configPath = configPath
        self.logger = logger
        self.logLevel = logLevel
        self.auditLogger = auditLogger
        self.cancellationLimit = cancellationLimit
        self.metricsRegistry = metricsRegistry
        self.clock = clock
    }

    /// Points swift-metrics at a Prometheus registry, once per process (the executable calls it).
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// Runs until a shutdown signal; `onReady` runs once the socket listens and every SVID is in the cache.
    public func run(onReady: @escaping @Sendable () -> Void = {}) async throws {
        let clock = clock
        let now: @Sendable () -> Date = { clock.now }
        let startedAt = now()
        let notifier = SystemdNotifier()
        let descriptors = DescriptorLimit.raise()
        var callerLimits = config.workloadAPI.callerLimits
        callerLimits.maxTotalConnections = DescriptorLimit.connectionLimit(
            configured: callerLimits.maxTotalConnections,
            softLimit: descriptors
        )
        let upstream: any IdentityUpstream
        let localUpstream: LocalUpstream?
        var spireServer: SPIREServerUpstream? = nil
        /// The agent identity snapshots are taken under: the SPIRE agent ID in fleet mode, none standalone.
        let agentID: @Sendable () -> SPIFFEID?
        /// The one stored before this start, which a snapshot must have been taken under.
        let storedAgentID: SPIFFEID?
        switch config.upstream {
        case .spire(let spire):
            let server = SPIREServerUpstream(config: spire, logger: logger)
            upstream = SPIREUpstream(server: server)
            spireServer = server
            localUpstream = nil
            agentID = { server.agentID }
            // Read once here; the first sync uses it as it is. One that cannot be used fails that sync, as it would.
            storedAgentID = try? server.loadIdentity()?.svid.spiffeID
        case .local(let settings):
            notifier.status("starting: loading the signing authority")
            let authority = try LocalAuthority(
                config: LocalAuthority.Config(
                    trustDomain: config.trustDomain,
                    dataDirectory: config.dataDirectory,
                    caKeyType: settings.caKeyType,
                    caTTL: settings.caTTL,
                    x509SVIDTTL: settings.x509SVIDTTL,
                    jwtSVIDTTL: settings.jwtSVIDTTL
                ),
                now: now()
            )
            let local = LocalUpstream(
                authority: authority,
                entries: config.entries,
                templates: config.entryTemplates,
                maximumTemplateInstances: config.entryTemplateMaxInstances,
                federatedBundles: config.federatedBundles,
                logger: logger
            )
            upstream = local
            localUpstream = local
            agentID = { nil }
            storedAgentID = nil
        }
        defer { spireServer?.close() }
        let cache = IdentityCache(
            jwtSVIDCacheSize: config.jwtSVIDCacheSize,
            svidLimit: config.x509SVIDCacheSize == 0 ? nil : config.x509SVIDCacheSize,
            now: now
        )
        let snapshots = IdentitySnapshots(
            file: IdentitySnapshotFile(directory: config.dataDirectory, trustDomain: config.trustDomain),
            logger: logger,
            agentID: agentID
        )
        let status = StatusReporter(cache: cache, trustDomain: config.trustDomain)
        let readiness = Readiness(cache: cache)
        let syncInterval = config.spire?.syncInterval ?? .seconds(5)
        let rotator = SVIDRotator(
            cache: cache,
            upstream: upstream,
            syncInterval: syncInterval,
            logger: logger,
            clock: clock,
            afterPass: { state in
                snapshots.save(state, at: clock.now)
                if readiness.isServing { notifier.status(status.line(state)) }
            }
        )
        // What the agent served before it stopped, if still valid: with it, a SPIRE Server that cannot be reached
        // does not keep the socket closed, and nothing is signed again because the agent restarted.
        let restored = snapshots.restore(into: cache, at: now(), agentID: storedAgentID)
        // Prime the cache before the socket opens, so the first caller already finds its SVIDs. A SPIRE Server that
        // cannot be reached yet is waited for (with backoff) unless the snapshot gave something to serve.
        notifier.status(
            config.spire == nil
                ? "starting: minting \(config.entries.count) identities" : "starting: syncing with spire server"
        )
        var primedAt = now()
        var minted = await rotator.syncOnce(at: primedAt)
        var attempt = 1
        while config.spire != nil && !cache.state.lastSyncSucceeded && restored == 0 {
            notifier.status("starting: waiting for spire server (attempt \(attempt) failed)")
            try await clock.sleep(for: rotator.backoff.delay(afterFailures: attempt))
            primedAt = now()
            minted = await rotator.syncOnce(at: primedAt)
            attempt += 1
        }
        logger.info(
            "identity cache primed",
            metadata: [
                LogKey.entries: "\(cache.state.entries.count)", LogKey.svidsMinted: "\(minted)",
                LogKey.trustDomain: "\(config.trustDomain)",
            ]
        )
        // Priming allocated and freed a key, CSR and certificate per entry; hand the freed memory back to the
        // system rather than keep it as the process's high-water mark.
        MemoryTrimmer.trim()
        let attestors = AttestorSet(AttestorSet.attestors(for: config, clock: clock))
        let logSelectors = LogSelectors(prefixes: config.logSelectors)
        var instantiateTemplates: (@Sendable (Set<Selector>) async -> Void)? = nil
        if let templates = localUpstream?.templates {
            // A caller that fills a template anew waits for one pass, so its first answer holds the instance.
            instantiateTemplates = { selectors in
                if templates.instantiate(for: selectors) { _ = await rotator.requestPass() }
            }
        }
        let backend = WorkloadBackend(
            cache: cache,
            attestorSet: attestors,
            upstream: upstream,
            trustDomain: config.trustDomain,
            logger: logger,
            procRoot: "/proc",
            now: now,
            instantiateTemplates: instantiateTemplates,
            witIssuer: localUpstream.map { WITSVIDIssuer(upstream: $0) },
            logSelectors: logSelectors,
            audit: config.auditEnabled
                ? AuditTrail(
                    logger: auditLogger ?? AuditTrail.defaultLogger(),
                    logSelectors: logSelectors
                ) : nil
        )
        let activated = SystemdNotifier.activatedSocket()
        logger.info(
            "caller limits",
            metadata: [
                LogKey.descriptors: "\(descriptors)", LogKey.maxConnections: "\(callerLimits.maxTotalConnections)",
                LogKey.maxConnectionsPerCaller: "\(callerLimits.maxConnections)",
            ]
        )
        if activated != nil {
            logger.info("using the socket passed by systemd; workload_api.socket_path is not bound")
        }
        let server = WorkloadAPIServer(
            socketPath: config.workloadAPI.socketPath,
            backend: backend,
            logger: logger,
            allowUnauthenticatedVerifiers: config.workloadAPI.allowUnauthenticatedVerifiers,
            sds: config.sds,
            limits: callerLimits,
            idleTimeout: config.workloadAPI.connectionIdleTimeout,
            clock: clock,
            activatedDescriptor: activated
        )
        let brokerServer = config.broker.flatMap { settings -> BrokerServer? in
            let identity: BrokerIdentity
            if let localUpstream {
                identity = .signed(by: localUpstream.authority, for: settings.spiffeID, clock: clock)
            } else if let spireServer {
                identity = .agentSVID(of: spireServer, clock: clock)
            } else {
                return nil
            }
            return Self.brokerServer(
                settings,
                identity: identity,
                backend: backend,
                attestors: attestors,
                cache: cache,
                clock: clock
            )
        }
        let parties = 1 + (config.admin.socketPath == nil ? 0 : 1) + (brokerServer == nil ? 0 : 1)
        let listening = ListeningBarrier(parties: parties) {
            readiness.markServing(true)
            notifier.ready(status: status.line(cache.state))
            onReady()
        }
        let onListening: @Sendable () -> Void = { listening.arrive() }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: RotationService(rotator: rotator, primedAt: primedAt)),
            .init(
                service: EndpointsService(server: server, cache: cache, notifier: notifier, onListening: onListening)
            ),
        ]
        if let listen = config.health.listen {
            let registry = metricsRegistry
            let health = HealthServer(
                host: listen.host,
                port: listen.port,
                probes: .init(
                    readiness: { readiness.check(at: clock.now) },
                    metrics: { registry?.emitToString() ?? "" }
                ),
                logger: logger
            )
            services.append(.init(service: HealthService(server: health)))
        }
        if let adminPath = config.admin.socketPath {
            let api = AdminAPI(
                config: config,
                cache: cache,
                attestors: attestors,
                readiness: readiness,
                server: server,
                callerLimits: callerLimits,
                localAuthority: localUpstream?.authority,
                spireServer: spireServer,
                logLevel: logLevel,
                startedAt: startedAt,
                clock: clock,
                logger: logger
            )
            let admin = AdminServer(
                socketPath: adminPath,
                authorizedUIDs: config.admin.authorizedUIDs,
                pin: { backend.pin($0, process: $1) },
                logger: logger,
                handler: { await api.handle($0) }
            )
            services.append(
                .init(
                    service: OptionalEndpointService(
                        description: "admin",
                        socketPath: admin.socketPath,
                        serve: { try await admin.run(onListening: $0) },
                        logger: logger,
                        onListening: onListening
                    )
                )
            )
        }
        if let brokerServer {
            services.append(
                .init(
                    service: OptionalEndpointService(
                        description: "broker",
                        socketPath: "\(brokerServer.address)",
                        serve: { try await brokerServer.run(onListening: $0) },
                        logger: logger,
                        onListening: onListening
                    )
                )
            )
        }
        if let interval = notifier.watchdogInterval {
            services.append(
                .init(
                    service: WatchdogService(
                        notifier: notifier,
                        cache: cache,
                        interval: interval,
                        staleAfter: .seconds(30),
                        clock: clock
                    )
                )
            )
        }
        if let configPath {
            let reloader = Reloader(
                path: configPath,
                running: config,
                upstream: localUpstream,
                attestors: attestors,
                rotator: rotator,
                logLevel: logLevel,
                notifier: notifier,
                status: status,
                logger: logger
            )
            services.append(.init(service: ReloadService(reloader: reloader)))
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // Shutdown is bounded: what has not drained after 10 s is cancelled (streams end at once; this covers a
        // unary call stuck in the upstream), well inside the unit's TimeoutStopSec.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(10)
        groupConfiguration.maximumCancellationDuration = cancellationLimit
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        logger.info("lanyard stopped")
    }
}

/// The one-line summary behind `STATUS=`.
struct StatusReporter: Sendable {
    let cache: IdentityCache
    let trustDomain: TrustDomain

    func line(_ state: CacheState) -> String {
        var line = "serving \(state.svids.count) of \(state.entries.count) identities for \(trustDomain)"
        if let restoredFrom = state.restoredFrom {
            line += " from the snapshot of \(Self.format(restoredFrom))"
        }
        if let failingSince = state.failingSince {
            line += "; upstream unreachable since \(Self.format(failingSince))"
        }
        return line
    }

    private static func format(_ date: Date) -> String {
        ISO8601DateFormatter.string(from: date, timeZone: .gmt, formatOptions: [.withInternetDateTime])
    }
}

/// The rotation loop as a lifecycle service.
struct RotationService: Service, CustomStringConvertible {
    var description: String { "svid-rotation" }
    let rotator: SVIDRotator
    /// When the priming pass began: the loop's first pass follows it after the usual wait.
    let primedAt: Date

    func run() async throws {
        await cancelWhenGracefulShutdown { await rotator.run(afterPassAt: primedAt) }
    }
}

/// The Workload API socket as a lifecycle service; on shutdown it tells systemd, ends every open stream and
/// removes the socket.
struct EndpointsService: Service, CustomStringConvertible {
    var description: String { "workload-api" }
    let server: WorkloadAPIServer
    let cache: IdentityCache
    let notifier: SystemdNotifier
    let onListening: @Sendable () -> Void

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run(onListening: onListening)
        } onGracefulShutdown: {
            notifier.stopping()
            // End every stream cleanly first (clients see status OK, not a reset), then stop accepting.
            cache.finishAll()
            server.beginShutdown()
        }
    }
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, but only while the agent proves alive: the cache's
/// lock answers and the rotation loop has tried a sync recently. A stuck agent stops pinging and systemd restarts it.
struct WatchdogService: Service, CustomStringConvertible {
    var description: String { "watchdog" }
    let notifier: SystemdNotifier
    let cache: IdentityCache
    let interval: Duration
    /// How old the last sync attempt may be before the agent counts as stuck.
    let staleAfter: Duration
    let clock: any AgentClock

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let lastSync = cache.state.lastSyncAttempt ?? .distantPast
                if clock.now.timeIntervalSince(lastSync) < staleAfter.timeInterval {
                    notifier.watchdogPing()
                }
                do {
                    try await clock.sleep(for: interval / 2)
                } catch {
                    return
                }
            }
        }
    }
}

/// The health and metrics endpoints as a lifecycle service.
struct HealthService: Service, CustomStringConvertible {
    var description: String { "health" }
    let server: HealthServer

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await server.run() }
    }
}

extension Agent {
    /// The Broker Endpoint of `settings`, presenting `identity`; clients verified against the current bundle (the
    /// embedded CA's, or SPIRE Server's in fleet mode).
    static func brokerServer(
        _ settings: BrokerSettings,
        identity: BrokerIdentity,
        backend: WorkloadBackend,
        attestors: AttestorSet,
        cache: IdentityCache,
        clock: any AgentClock
    ) -> BrokerServer {
        let verifyClient: @Sendable ([Data]) -> Bool = { chainDER in
            guard let bundle = cache.state.bundle else { return false }
            do {
                let chain = try chainDER.map { try Certificate(derEncoded: $0) }
                let anchors = try bundle.x509Authorities.map { try Certificate(derEncoded: $0) }
                _ = try X509SVIDVerifier.verify(
                    chain,
                    bundle: X509Bundle(trustDomain: bundle.trustDomain, authorities: anchors),
                    at: clock.now
                )
                return true
            } catch {
                return false
            }
        }
        return BrokerServer(
            address: settings.address,
            limits: settings.limits,
            identity: identity,
            verifyClient: verifyClient,
            backend: AgentBrokerBackend(backend: backend, attestors: attestors),
            authorizedBrokers: settings.authorizedBrokers,
            logger: backend.logger
        )
    }
}

/// An endpoint besides the Workload API's (admin, broker) as a lifecycle service. One that cannot listen (its
/// directory cannot be created, say) is logged and left out: operators lose `lanyard status` or brokers their
/// endpoint, workloads lose nothing.
struct OptionalEndpointService: Service, CustomStringConvertible {
    /// `admin` or `broker`, for the log.
    let description: String
    let socketPath: String
    /// Serves until cancelled, calling its argument once listening.
    let serve: @Sendable (_ onListening: @escaping @Sendable () -> Void) async throws -> Void
    let logger: Logger
    /// Called once the socket listens, or once it is clear it never will (readiness must not wait for it).
    let onListening: @Sendable () -> Void

    func run() async throws {
        let reported = Mutex(false)
        let report: @Sendable () -> Void = {
            if reported.withLock({ was in
                defer { was = true }; return !was
            }) {
                onListening()
            }
        }
        defer { report() }
        do {
            try await cancelWhenGracefulShutdown { try await serve(report) }
        } catch  where !Task.isCancelled {
            report()
            logger.error(
                "the \(description) endpoint cannot listen; serving without it",
                metadata: [LogKey.socketPath: "\(socketPath)", LogKey.error: "\(error)"]
            )
            try? await gracefulShutdown()
        }
    }
}

/// Reloads the configuration on every SIGHUP.
struct ReloadService: Service, CustomStringConvertible {
    var description: String { "reload" }
    let reloader: Reloader

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reloader.reload()
            }
        }
    }
}
