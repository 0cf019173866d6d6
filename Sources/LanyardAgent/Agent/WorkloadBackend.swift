import Attestation
import Endpoints
import Foundation
import IdentityCache
import Logging
import Metrics
import SPIFFE
import SPIFFECrypto

/// Connects the Workload API handler to attestation, the identity cache and the upstream.
struct WorkloadBackend: WorkloadAPIBackend {
    let cache: IdentityCache
    let attestorSet: AttestorSet
    let upstream: any IdentityUpstream
    let trustDomain: TrustDomain
    let validator = JWTSVIDValidator()
    let logger: Logger
    let procRoot: String
    let now: @Sendable () -> Date
    /// Instantiates the templated entries that apply to an attested caller (standalone mode), before it is served.
    let instantiateTemplates: (@Sendable (Set<Selector>) async -> Void)?
    /// Nil in fleet mode: the SPIRE Server cannot sign WIT-SVIDs.
    let witIssuer: WITSVIDIssuer?
    let sharedUpdates: SharedWorkloadUpdates
    let logSelectors: LogSelectors
    /// Nil unless `[audit] enabled`.
    let audit: AuditTrail?
    /// "no identity issued" is logged at most once a second per uid.
    let refusalThrottle = LogThrottle(interval: .seconds(1))

    init(
        cache: IdentityCache,
        attestorSet: AttestorSet,
        upstream: any IdentityUpstream,
        trustDomain: TrustDomain,
        logger: Logger,
        procRoot: String,
        now: @escaping @Sendable () -> Date,
        instantiateTemplates: (@Sendable (Set<Selector>) async -> Void)? = nil,
        witIssuer: WITSVIDIssuer? = nil,
        logSelectors: LogSelectors = LogSelectors(prefixes: []),
        audit: AuditTrail? = nil
    ) {
        self.logSelectors = logSelectors
        self.audit = audit
        self.cache = cache
        self.attestorSet = attestorSet
        self.upstream = upstream
        self.trustDomain = trustDomain
        self.logger = logger
        self.procRoot = procRoot
        self.now = now
        self.instantiateTemplates = instantiateTemplates
        self.witIssuer = witIssuer
        sharedUpdates = SharedWorkloadUpdates { view in Self.update(view, trustDomain: trustDomain) }
    }

    func pin(_ credentials: WorkloadProcess, process: PeerProcess) -> any CallerPin {
        let descriptor: ProcessPin.Descriptor =
            switch process {
            case .pidfd(let pidfd): .pidfd(pidfd)
            case .pidfdUnsupported: .openByPID
            case .unknown: .none
            }
        return PinnedProcess(
            handed: HandedIdentities(),
            pin: ProcessPin(
                pid: credentials.pid,
                uid: credentials.uid,
                gid: credentials.gid,
                descriptor: descriptor,
                procRoot: procRoot
            )
        )
    }

    /// Runs every attestor concurrently and takes the union of their selectors. Any attestor failing fails the
    /// attestation (`UNAVAILABLE`, so clients retry): the caller's selectors would be partial, and it would be told
    /// it has fewer identities than it has. The connection's pin is checked before and after, so what the
    /// attestors read from `/proc/<pid>` belongs to the process that connected, with the credentials it connected
    /// with, and a PID recycled in between never receives the old process's identity.
    func attest(_ caller: ConnectedCaller) async throws -> AttestedCaller {
        let credentials = caller.credentials
        try caller.pin.verify()
        let attestors = attestorSet.current
        let results: [(String, Result<[Selector], any Error>)]
        if attestors.count == 1 {
            // One attestor (the common unix-only node) runs inline: a child task would only add a scheduling hop.
            results = [await Self.run(attestors[0], credentials)]
        } else {
            results = await withTaskGroup(of: (String, Result<[Selector], any Error>).self) { group in
                for attestor in attestors { group.addTask { await Self.run(attestor, credentials) } }
                var results: [(String, Result<[Selector], any Error>)] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        var selectors: Set<Selector> = []
        var failures = 0
        for (name, result) in results {
            switch result {
            case .success(let found): selectors.formUnion(found)
            case .failure(let error):
                failures += 1
                logger.warning(
                    "workload attestor failed",
                    metadata: [
                        LogKey.attestorName: "\(name)", LogKey.callerPID: "\(credentials.pid)",
                        LogKey.error: "\(error)",
                    ]
                )
            }
        }
        do {
            try caller.pin.verify()
        } catch {
            logger.warning(
                "caller exited or changed during attestation",
                metadata: [LogKey.callerPID: "\(credentials.pid)", LogKey.error: "\(error)"]
            )
            throw error
        }
        if failures > 0 {
            throw WorkloadAPIError(.attestationFailed, "workload attestation failed")
        }
        await instantiateTemplates?(selectors)
        logger.debug(
            "caller attested",
            metadata: [
                LogKey.callerPID: "\(credentials.pid)", LogKey.callerUID: "\(credentials.uid)",
                LogKey.selectors: "\(logSelectors.describe(selectors))",
            ]
        )
        return AttestedCaller(credentials: credentials, selectors: selectors, pin: caller.pin)
    }

    /// One attestor's answer, timed.
    private static func run(
        _ attestor: any WorkloadAttestor,
        _ process: WorkloadProcess
    ) async -> (String, Result<[Selector], any Error>) {
        let started = ContinuousClock.now
        defer {
            Timer(label: "lanyard_attestation_duration_seconds", dimensions: [("attestor", attestor.name)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
        do {
            return (attestor.name, .success(try await attestor.attest(process)))
        } catch {
            return (attestor.name, .failure(error))
        }
    }

    func subscribe(_ caller: AttestedCaller, to continuation: AsyncStream<WorkloadUpdate>.Continuation) {
        let shared = sharedUpdates
        let selectors = caller.selectors
        cache.subscribe(selectors: selectors, continuation: continuation) { view in
            shared.update(for: view, selectors: selectors)
        }
    }

    static func update(_ view: CallerView, trustDomain: TrustDomain) -> WorkloadUpdate {
        let localDER = view.bundle?.concatenatedX509Authorities ?? Data()
        let svids = view.identities.map { identity in
            WorkloadX509SVID(
                spiffeID: identity.entry.spiffeID,
                chainDER: identity.svid.chainDER,
                privateKeyDER: identity.svid.privateKeyDER,
                bundleDER: localDER,
                hint: identity.entry.hint,
                chainPEM: identity.svid.chainPEM,
                privateKeyPEM: identity.svid.privateKeyPEM,
                entryID: identity.entry.id
            )
        }
        var x509Bundles: [TrustDomain: Data] = [:]
        var x509BundlesPEM: [TrustDomain: String] = [:]
        var jwtBundles: [TrustDomain: Data] = [:]
        var witBundles: [TrustDomain: String] = [:]
        for bundle in ([view.bundle].compactMap { $0 } + view.federatedBundles.values) {
            if !bundle.witAuthorities.isEmpty, let jwks = try? bundle.jwksData(format: .standardWITAuthorities) {
                witBundles[bundle.trustDomain] = String(decoding: jwks, as: UTF8.self)
            }
            x509Bundles[bundle.trustDomain] = bundle.concatenatedX509Authorities
            x509BundlesPEM[bundle.trustDomain] = bundle.x509Authorities.map {
                PEM.encode(label: "CERTIFICATE", der: $0)
            }.joined()
            jwtBundles[bundle.trustDomain] = try? bundle.jwksData(format: .standardJWTAuthorities)
        }
        return WorkloadUpdate(
            svids: svids,
            x509Bundles: x509Bundles,
            jwtBundles: jwtBundles,
            x509BundlesPEM: x509BundlesPEM,
            witBundles: witBundles,
            localTrustDomain: trustDomain
        )
    }

    var issuesWITSVIDs: Bool { witIssuer != nil }

    /// The caller's WIT-SVIDs: its identities as its X509-SVID view orders and filters them (hints), those whose
    /// entry does not opt out, or only `spiffeID`'s.
    func witSVIDs(for caller: AttestedCaller, spiffeID: SPIFFEID?) async throws -> WorkloadWITSVIDs {
        guard let witIssuer else { return WorkloadWITSVIDs(svids: [], renewAt: nil) }
        let time = now()
        let entries = cache.state.view(for: caller.selectors, at: time).identities.map(\.entry).filter { entry in
            entry.issuesWITSVIDs && (spiffeID == nil || entry.spiffeID == spiffeID)
        }
        do {
            return try await witIssuer.svids(for: entries, at: time)
        } catch {
            logger.error("wit-svid signing failed", metadata: [LogKey.error: "\(error)"])
            throw WorkloadAPIError(.unavailable, "could not mint a wit-svid; try again")
        }
    }

    /// One token per identity the caller holds (or only `spiffeID`'s), reused from the cache until half-life.
    func jwtSVIDs(for caller: AttestedCaller, audience: [String], spiffeID: SPIFFEID?) async throws -> [WorkloadJWTSVID]
    {
        var seen: Set<SPIFFEID> = []
        let entries = cache.state.matchingEntries(caller.selectors).filter { entry in
            (spiffeID == nil || entry.spiffeID == spiffeID) && seen.insert(entry.spiffeID).inserted
        }
        var answers: [WorkloadJWTSVID] = []
        for entry in entries {
            let key = JWTSVIDCache.Key(spiffeID: entry.spiffeID, audience: audience)
            let time = now()
            if let token = cache.jwtSVIDs.token(for: key, at: time) {
                answers.append(WorkloadJWTSVID(spiffeID: entry.spiffeID, token: token, hint: entry.hint))
                audit?.handed(jwtFor: entry.spiffeID, entryID: entry.id, audience: key.audience, to: caller)
                continue
            }
            let svid: JWTSVID
            do {
                svid = try await upstream.signJWTSVID(for: entry, audience: key.audience, at: time)
            } catch {
                logger.error(
                    "jwt-svid signing failed",
                    metadata: [LogKey.spiffeID: "\(entry.spiffeID)", LogKey.error: "\(error)"]
                )
                throw WorkloadAPIError(.unavailable, "could not mint a jwt-svid; try again")
            }
            cache.jwtSVIDs.store(svid, for: key, at: time)
            answers.append(WorkloadJWTSVID(spiffeID: entry.spiffeID, token: svid.token, hint: entry.hint))
            audit?.handed(jwtFor: entry.spiffeID, entryID: entry.id, audience: key.audience, to: caller)
        }
        return answers
    }

    /// Validates against the bundles the caller may see: the local one, and those its entries federate with.
    /// Tokens from a foreign trust domain return only `sub`, `aud` and `exp`, as SPIRE does.
    func validateJWTSVID(_ token: String, audience: String, for caller: AttestedCaller) async throws -> ValidatedJWTSVID
    {
        let view = cache.state.view(for: caller.selectors, at: now())
        var bundles = view.federatedBundles
        if let local = cache.state.bundle { bundles[local.trustDomain] = local }
        let svid: JWTSVID
        do {
            svid = try validator.validate(token, audience: audience, bundles: { bundles[$0] }, at: now())
        } catch {
            throw WorkloadAPIError(.invalidRequest, error.message)
        }
        var claims = svid.claims
        if svid.spiffeID.trustDomain != trustDomain {
            claims = claims.filter { ["sub", "aud", "exp"].contains($0.key) }
        }
        if case .string(let single)? = claims["aud"] { claims["aud"] = .array([.string(single)]) }
        return ValidatedJWTSVID(spiffeID: svid.spiffeID, claims: claims)
    }
}

extension WorkloadBackend {
    /// Logs the refusal with the selectors `log_selectors` allows (at most once a second per uid).
    func noIdentityIssued(to caller: AttestedCaller) {
        let (log, suppressed) = refusalThrottle.admit(String(caller.credentials.uid))
        guard log else { return }
        logger.info(
            "no identity issued",
            metadata: [
                LogKey.callerPID: "\(caller.credentials.pid)", LogKey.callerUID: "\(caller.credentials.uid)",
                LogKey.selectors: "\(logSelectors.describe(caller.selectors))",
                "refusals.suppressed": "\(suppressed)",
            ]
        )
    }

    func handed(_ svids: [WorkloadX509SVID], to caller: AttestedCaller) {
        audit?.handed(svids, to: caller)
    }
}

/// A ``ProcessPin`` as the endpoints see it: its failures become Workload API errors whose messages name no other
/// process. It lives as long as the connection, and so holds what the connection was handed (for the audit trail).
struct PinnedProcess: CallerPin {
    let handed: HandedIdentities
    let pin: ProcessPin

    func verify() throws {
        do {
            try pin.verify()
        } catch {
            switch error.code {
            case .credentialsChanged:
                throw WorkloadAPIError(.callerChanged, "caller credentials changed since it connected; reconnect")
            case .executableChanged:
                throw WorkloadAPIError(.callerChanged, "caller executable changed since it connected; reconnect")
            default:
                throw WorkloadAPIError(.callerGone, "caller process is gone")
            }
        }
    }
}
