public import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto
public import Logging
public import SPIFFE
public import SPIFFECrypto
import Synchronization

/// SPIRE Server as the upstream (fleet mode): node attestation, the agent's own SVID, authorized entries, bundles,
/// and workload SVIDs signed by the server.
///
/// The agent identity is kept in `data_dir` and reused across restarts; it is renewed at half-life with
/// `RenewAgent`, and re-attested by itself when it has expired or the server demands it, if the attestation method
/// allows (a join token does not: it is single-use). Every call is bounded by the request timeout; failures
/// surface as ``UpstreamError`` and the caller (the rotator) retries with backoff while cached SVIDs keep serving.
public final class SPIREServerUpstream: Sendable {
    /// What one sync returns: the entries the agent is authorized for and the bundles they need.
    public struct Snapshot: Sendable {
        public var entries: [RegistrationEntry]
        public var bundle: SPIFFEBundle
        public var federatedBundles: [TrustDomain: SPIFFEBundle]
    }

    public let config: SPIREServerConfig
    private let connection: SPIREServerConnection
    private let logger: Logger
    private let identity = Mutex<AgentIdentity?>(nil)
    /// Set while the identity in memory could not be written to `data_dir`.
    private let unsaved = Mutex(false)
    /// Entries by ID from the last sync, so `SyncAuthorizedEntries` only asks for what changed.
    private let knownEntries = Mutex<[String: Spire_Api_Types_Entry]>([:])
    /// Attestation and renewal, which must not run twice at once: concurrent callers share one run.
    private let identityWork = SharedTask<AgentIdentity>()
    /// Since when the server has refused the agent or the agent the server, for `rebootstrap_delay`.
    private let refusedSince = Mutex<Date?>(nil)

    /// The output mask SPIRE's agent asks entries with.
    static let entryMask: Spire_Api_Types_EntryMask = {
        var mask = Spire_Api_Types_EntryMask()
        mask.spiffeID = true
        mask.selectors = true
        mask.federatesWith = true
        mask.admin = true
        mask.downstream = true
        mask.revisionNumber = true
        mask.storeSvid = true
        mask.hint = true
        mask.createdAt = true
        mask.dnsNames = true
        mask.x509SvidTtl = true
        mask.jwtSvidTtl = true
        return mask
    }()

    public init(config: SPIREServerConfig, logger: Logger) {
        self.config = config
        self.connection = SPIREServerConnection(config: config)
        self.logger = logger
    }

    /// The agent's current SPIFFE ID, once attested (for logs, health and tests).
    public var agentID: SPIFFEID? { identity.withLock { $0?.svid.spiffeID } }

    /// The agent's current identity, once attested.
    public var currentIdentity: AgentIdentity? { identity.withLock { $0 } }

    /// Closes the connection calls as the agent share; the agent is stopping.
    public func close() {
        connection.close()
    }

    // MARK: - Agent identity

    /// The identity the agent holds; before the first call, the one an earlier run stored (read from disk once),
    /// nil when there is none. A stored identity that cannot be used is an error: the operator decides.
    @discardableResult
    public func loadIdentity() throws(UpstreamError) -> AgentIdentity? {
        if let current = identity.withLock({ $0 }) { return current }
        guard let stored = try AgentIdentity.load(directory: config.dataDirectory, trustDomain: config.trustDomain)
        else { return nil }
        logger.info(
            "reusing the stored agent identity",
            metadata: [LogKey.spiffeID: "\(stored.svid.spiffeID)", LogKey.svidExpiresAt: "\(stored.svid.expiresAt)"]
        )
        return identity.withLock { current in
            if current == nil { current = stored }
            return current
        }
    }

    /// Makes sure the agent holds a usable SVID: loaded from disk, attested, renewed at half-life, or re-attested.
    @discardableResult
    public func ensureIdentity(at now: Date) async throws(UpstreamError) -> AgentIdentity {
        try await UpstreamError.wrapping(.unavailable, "cannot attest or renew the agent") {
            try await identityWork.value { [self] () async throws -> AgentIdentity in
                guard let current = try loadIdentity() else { return try await attest(at: now) }
                if current.svid.expiresAt <= now {
                    guard current.reattestable else {
                        throw UpstreamError(
                            .attestation,
                            "the agent svid \(current.svid.spiffeID) expired at \(current.svid.expiresAt) and \(config.nodeAttestor.pluginName) cannot re-attest; give the agent a new join token"
                        )
                    }
                    logger.warning(
                        "the agent svid expired; attesting again",
                        metadata: [LogKey.spiffeID: "\(current.svid.spiffeID)"]
                    )
                    return try await attest(at: now)
                }
                guard now >= current.renewAt else { return current }
                do {
                    return try await renew(current, at: now)
                } catch {
                    // The current SVID is still valid (the server keeps accepting it until the agent presents a
                    // renewed one), so a failed renewal must not stop the sync: try again on the next pass.
                    logger.warning(
                        "agent svid renewal failed; syncing with the current one and retrying",
                        metadata: [
                            LogKey.spiffeID: "\(current.svid.spiffeID)",
                            LogKey.svidExpiresAt: "\(current.svid.expiresAt)",
                            LogKey.error: "\(error)",
                        ]
                    )
                    return current
                }
            }
        }
    }

    /// Runs one call to the server as the agent: the identity made current first (and stored, if an earlier write
    /// failed), then `body` over a connection presenting it. Transport and RPC failures become `.unavailable` errors
    /// naming `what`. With `refusalMeansRejected` (the sync, whose first call any attested agent may make), a
    /// PERMISSION_DENIED means the server refuses the agent's SVID. That, or a server whose certificate no longer
    /// chains to the stored bundle, lasting `rebootstrap_delay`, makes the agent bootstrap again where
    /// `rebootstrap_mode` and its node attestor allow, and the call is made once more with the new identity.
    private func callAsAgent<Result: Sendable>(
        _ what: String,
        at now: Date,
        refusalMeansRejected: Bool = false,
        _ body: @Sendable (SPIREServerConnection.Client, AgentIdentity) async throws -> Result
    ) async throws(UpstreamError) -> Result {
        let current: AgentIdentity
        do {
            current = try await ensureIdentity(at: now)
        } catch  where error.code == .untrustedServer {
            // An expired agent SVID attested again under a bundle that no longer trusts the server.
            guard let stored = identity.withLock({ $0 }) else { throw error }
            let fresh = try await rebootstrap(after: error, from: stored, at: now)
            return try await call(what, as: fresh, at: now, refusalMeansRejected: refusalMeansRejected, body)
        }
        if unsaved.withLock({ $0 }) { store(current) }
        do {
            let result = try await call(what, as: current, at: now, refusalMeansRejected: refusalMeansRejected, body)
            refusedSince.withLock { $0 = nil }
            return result
        } catch  where error.code == .untrustedServer || error.code == .agentRefused {
            let fresh = try await rebootstrap(after: error, from: current, at: now)
            return try await call(what, as: fresh, at: now, refusalMeansRejected: refusalMeansRejected, body)
        }
    }

    private func call<Result: Sendable>(
        _ what: String,
        as current: AgentIdentity,
        at now: Date,
        refusalMeansRejected: Bool,
        _ body: @Sendable (SPIREServerConnection.Client, AgentIdentity) async throws -> Result
    ) async throws(UpstreamError) -> Result {
        do {
            return try await connection.withClient(
                presenting: current.svid,
                trusting: current.bundle.x509Authorities,
                at: now
            ) { client in try await body(client, current) }
        } catch let error as UpstreamError {
            throw error
        } catch let error as RPCError where refusalMeansRejected && error.code == .permissionDenied {
            throw UpstreamError(
                .agentRefused,
                "the server refused the agent svid \(current.svid.spiffeID): \(error.message)"
            )
        } catch {
            throw UpstreamError(.unavailable, "\(what) failed: \(SPIREServerConnection.describe(error))")
        }
    }

    /// After a refusal (`error`): bootstraps again and returns the new identity once the refusal has lasted
    /// `rebootstrap_delay` and the mode and node attestor allow it; otherwise throws `error` with what happens next or
    /// what the operator must do. A server the agent no longer trusts is trusted again only through the configured
    /// bootstrap source (`insecure_bootstrap` cannot be combined with rebootstrapping); a server that refuses the
    /// agent is attested to again under the stored bundle.
    private func rebootstrap(
        after error: UpstreamError,
        from current: AgentIdentity,
        at now: Date
    ) async throws(UpstreamError) -> AgentIdentity {
        let since = refusedSince.withLock { since in
            if since == nil { since = now }
            return since ?? now
        }
        let identityFile = config.dataDirectory + "/" + AgentIdentity.fileName
        let cause =
            error.code == .untrustedServer
            ? "the server's certificate does not chain to the stored bundle (was its CA replaced?)"
            : "the server no longer accepts the agent's svid (was the agent evicted?)"
        guard config.nodeAttestor.canAttestAgain else {
            throw UpstreamError(
                error.code,
                "\(error.message); \(cause). A join-token agent cannot attest again by itself: create a new token (spire-server token generate), set join_token or join_token_file to it, \(error.code == .untrustedServer ? "put the server's current CA in the trust bundle source, " : "")remove \(identityFile) and restart lanyard"
            )
        }
        guard config.rebootstrapMode != .never else {
            throw UpstreamError(
                error.code,
                "\(error.message); \(cause). rebootstrap_mode is \"never\": set it to \"auto\", or \(error.code == .untrustedServer ? "put the server's current CA in the trust bundle source, " : "")remove \(identityFile) and restart lanyard"
            )
        }
        let due = since.addingTimeInterval(config.rebootstrapDelay.timeInterval)
        guard now >= due else {
            throw UpstreamError(
                error.code,
                "\(error.message); \(cause). Bootstrapping again at \(due) if this lasts (rebootstrap_delay)"
            )
        }
        logger.warning(
            "bootstrapping again",
            metadata: [
                LogKey.spiffeID: "\(current.svid.spiffeID)", LogKey.error: "\(error.message)",
                LogKey.attestorName: "\(config.nodeAttestor.pluginName)",
            ]
        )
        let untrusted = error.code == .untrustedServer
        let fresh: AgentIdentity
        do {
            fresh = try await UpstreamError.wrapping(.attestation, "node attestation failed") {
                try await identityWork.value { [self] () async throws -> AgentIdentity in
                    let anchors =
                        untrusted
                        ? try await config.trustBundle.authorities(
                            trustDomain: config.trustDomain,
                            timeout: config.requestTimeout
                        ) : current.bundle.x509Authorities
                    return try await attest(at: now, trusting: anchors)
                }
            }
        } catch {
            throw UpstreamError(
                error.code,
                "cannot bootstrap again: \(error.message)\(untrusted ? " (does the trust bundle source hold the server's current CA?)" : ""); serving what the agent holds and trying again at the next sync"
            )
        }
        refusedSince.withLock { $0 = nil }
        return fresh
    }

    /// Makes `identity` the agent's and stores it. A failed write does not throw the identity away: the server issued
    /// it (a join token is spent, a renewal may retire the old SVID), so the agent uses it from memory and tries to
    /// store it again at every sync. Until a write succeeds, a restart falls back to the stored, older identity.
    private func adopt(_ fresh: AgentIdentity) {
        identity.withLock { $0 = fresh }
        store(fresh)
    }

    private func store(_ current: AgentIdentity) {
        do {
            try current.save(directory: config.dataDirectory)
            let recovered = unsaved.withLock { unsaved in
                defer { unsaved = false }
                return unsaved
            }
            if recovered {
                logger.notice(
                    "agent identity stored again",
                    metadata: [LogKey.dataDirectory: "\(config.dataDirectory)"]
                )
            }
        } catch {
            unsaved.withLock { $0 = true }
            logger.error(
                "cannot store the agent identity; serving it from memory and retrying at every sync",
                metadata: [LogKey.error: "\(error)"]
            )
        }
    }

    /// `AttestAgent`: key and CSR, the attestation payload, challenges answered, the agent SVID and then the bundle.
    /// The server is trusted through `anchors` when given (bootstrapping again), else as ``currentTrustAnchors()``.
    private func attest(at now: Date, trusting anchors: [Data]? = nil) async throws -> AgentIdentity {
        let attestation = NodeAttestation(attestor: config.nodeAttestor)
        let key = try PrivateKey(generating: config.agentKeyType)
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: nil)
        var params = Spire_Api_Server_Agent_V1_AttestAgentRequest()
        params.params.data.type = config.nodeAttestor.pluginName
        params.params.data.payload = try attestation.payload()
        params.params.params.csr = csr.derEncoded
        let firstMessage = params
        var trust = anchors
        if trust == nil { trust = try await currentTrustAnchors() }
        let options = connection.attestationCallOptions
        let (svid, reattestable, bundle) = try await connection.withClient(presenting: nil, trusting: trust, at: now) {
            client in
            let agent = Spire_Api_Server_Agent_V1_Agent.Client(wrapping: client)
            let (answers, answer) = AsyncStream<Data>.makeStream()
            let result = try await agent.attestAgent(
                request: StreamingClientRequest { writer in
                    try await writer.write(firstMessage)
                    for await response in answers {
                        var message = Spire_Api_Server_Agent_V1_AttestAgentRequest()
                        message.challengeResponse = response
                        try await writer.write(message)
                    }
                },
                options: options
            ) { response in
                defer { answer.finish() }
                for try await message in response.messages {
                    switch message.step {
                    case .challenge(let challenge)?: answer.yield(try attestation.respond(to: challenge))
                    case .result(let result)?: return result
                    case nil: throw UpstreamError(.protocolViolation, "the server sent an empty attestation step")
                    }
                }
                throw UpstreamError(.protocolViolation, "the server ended node attestation without a result")
            }
            let bundle = try await Spire_Api_Server_Bundle_V1_Bundle.Client(wrapping: client).getBundle(
                Spire_Api_Server_Bundle_V1_GetBundleRequest(),
                options: options
            )
            return (result.svid, result.reattestable, bundle)
        }
        let chain = try SPIREProtoConversions.chain(svid, what: "agent svid")
        let agentSVID = try X509SVID(certificates: chain, privateKey: key)
        let fresh = AgentIdentity(
            svid: agentSVID,
            bundle: try SPIREProtoConversions.bundle(bundle, expected: config.trustDomain),
            reattestable: reattestable,
            receivedAt: now
        )
        try checkAgentID(agentSVID.spiffeID)
        adopt(fresh)
        logger.notice(
            "node attested",
            metadata: [
                LogKey.spiffeID: "\(agentSVID.spiffeID)", LogKey.attestorName: "\(config.nodeAttestor.pluginName)",
                LogKey.svidExpiresAt: "\(agentSVID.expiresAt)", LogKey.reattestable: "\(reattestable)",
            ]
        )
        return fresh
    }

    /// `RenewAgent` over mTLS with the current SVID; re-attests when the server says the agent must.
    private func renew(_ current: AgentIdentity, at now: Date) async throws -> AgentIdentity {
        let key = try PrivateKey(generating: config.agentKeyType)
        var request = Spire_Api_Server_Agent_V1_RenewAgentRequest()
        request.params.csr = try CertificateSigningRequest(privateKey: key, spiffeID: nil).derEncoded
        let renewal = request
        let options = connection.callOptions
        // nil: the server refused with PERMISSION_DENIED, which for a re-attestable agent means "attest again".
        let answer = try await connection.withClient(
            presenting: current.svid,
            trusting: current.bundle.x509Authorities,
            at: now
        ) {
            client -> Spire_Api_Types_X509SVID? in
            do {
                return try await Spire_Api_Server_Agent_V1_Agent.Client(wrapping: client).renewAgent(
                    renewal,
                    options: options
                )
                .svid
            } catch let error as RPCError where error.code == .permissionDenied {
                if current.reattestable { return nil }
                throw error
            }
        }
        guard let svid = answer else {
            logger.warning(
                "the server refused renewal; attesting again",
                metadata: [LogKey.spiffeID: "\(current.svid.spiffeID)"]
            )
            return try await attest(at: now)
        }
        let renewed = AgentIdentity(
            svid: try X509SVID(certificates: SPIREProtoConversions.chain(svid, what: "agent svid"), privateKey: key),
            bundle: current.bundle,
            reattestable: current.reattestable,
            receivedAt: now
        )
        try checkAgentID(renewed.svid.spiffeID)
        adopt(renewed)
        logger.info(
            "agent svid renewed",
            metadata: [LogKey.spiffeID: "\(renewed.svid.spiffeID)", LogKey.svidExpiresAt: "\(renewed.svid.expiresAt)"]
        )
        return renewed
    }

    private func checkAgentID(_ id: SPIFFEID) throws(UpstreamError) {
        guard id.trustDomain == config.trustDomain, id.path.hasPrefix("/spire/agent/") else {
            throw UpstreamError(
                .protocolViolation,
                "the server issued \(id), which is not an agent id of \(config.trustDomain)"
            )
        }
    }

    /// The bundle's authorities once attested; before that, the bootstrap bundle (`trust_bundle_path` or
    /// `trust_bundle_url`), or nil with `insecure_bootstrap`: the first contact is not verified, and the bundle it
    /// returns is pinned from then on.
    private func currentTrustAnchors() async throws(UpstreamError) -> [Data]? {
        if let current = identity.withLock({ $0 }) { return current.bundle.x509Authorities }
        if config.trustBundle == .insecure {
            logger.warning(
                "insecure_bootstrap: attesting without verifying the server; what it presents now is trusted from now on",
                metadata: [LogKey.serverAddress: "\(config.host):\(config.port)"]
            )
        }
        return try await config.trustBundle.authorities(trustDomain: config.trustDomain, timeout: config.requestTimeout)
    }

    // MARK: - Sync

    /// One sync: the agent identity checked, then the bundle, the authorized entries and the federated bundles.
    public func sync(at now: Date) async throws(UpstreamError) -> Snapshot {
        let options = connection.callOptions
        let known = knownEntries.withLock { $0 }
        let logger = logger
        let trustDomain = config.trustDomain
        let (current, bundle, entries, federated) = try await callAsAgent(
            "sync with spire server",
            at: now,
            refusalMeansRejected: true
        ) {
            client,
            current in
            let bundleClient = Spire_Api_Server_Bundle_V1_Bundle.Client(wrapping: client)
            let bundle = try SPIREProtoConversions.bundle(
                try await bundleClient.getBundle(.init(), options: options),
                expected: trustDomain
            )
            let entries = try await Self.authorizedEntries(
                Spire_Api_Server_Entry_V1_Entry.Client(wrapping: client),
                known: known,
                options: options
            )
            var federated: [TrustDomain: SPIFFEBundle] = [:]
            let wanted = Set(entries.values.flatMap(\.federatesWith))
            for name in wanted.sorted() {
                guard let domain = try? TrustDomain(name), domain != trustDomain else { continue }
                var request = Spire_Api_Server_Bundle_V1_GetFederatedBundleRequest()
                request.trustDomain = name
                do {
                    federated[domain] = try SPIREProtoConversions.bundle(
                        try await bundleClient.getFederatedBundle(request, options: options),
                        expected: domain
                    )
                } catch let error as RPCError where error.code == .notFound {
                    logger.warning(
                        "the server has no bundle for a federated trust domain",
                        metadata: [LogKey.trustDomain: "\(name)"]
                    )
                }
            }
            return (current, bundle, entries, federated)
        }
        knownEntries.withLock { $0 = entries }
        if bundle != current.bundle { updateBundle(bundle) }
        var converted: [RegistrationEntry] = []
        for entry in entries.values.sorted(by: { $0.id < $1.id }) {
            do {
                converted.append(try SPIREProtoConversions.entry(entry))
            } catch {
                logger.warning(
                    "skipping an entry the server sent",
                    metadata: [LogKey.entryID: "\(entry.id)", LogKey.error: "\(error)"]
                )
            }
        }
        return Snapshot(entries: converted, bundle: bundle, federatedBundles: federated)
    }

    /// Keeps the stored bundle current, so the server stays trusted across its CA rotations and restarts.
    private func updateBundle(_ bundle: SPIFFEBundle) {
        guard var current = identity.withLock({ $0 }) else { return }
        current.bundle = bundle
        adopt(current)
        logger.info("trust bundle updated", metadata: [LogKey.bundleSequence: "\(bundle.sequenceNumber ?? 0)"])
    }

    /// `SyncAuthorizedEntries` (revisions first, then only the entries that changed); `GetAuthorizedEntries` when the
    /// server does not implement it.
    static func authorizedEntries(
        _ client: Spire_Api_Server_Entry_V1_Entry.Client<HTTP2ClientTransport.Posix>,
        known: [String: Spire_Api_Types_Entry],
        options: CallOptions
    ) async throws -> [String: Spire_Api_Types_Entry] {
        do {
            return try await syncEntries(client, known: known, options: options)
        } catch let error as RPCError where error.code == .unimplemented {
            var request = Spire_Api_Server_Entry_V1_GetAuthorizedEntriesRequest()
            request.outputMask = entryMask
            let response = try await client.getAuthorizedEntries(request, options: options)
            return Dictionary(response.entries.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        }
    }

    /// The sync protocol, as SPIRE's agent speaks it: the first answer either holds every entry (no revisions), or
    /// starts pages of revisions; the agent then asks, a page at a time, for the entries that are new or changed.
    /// Entries the server did not mention are gone.
    static func syncEntries(
        _ client: Spire_Api_Server_Entry_V1_Entry.Client<HTTP2ClientTransport.Posix>,
        known: [String: Spire_Api_Types_Entry],
        options: CallOptions
    ) async throws -> [String: Spire_Api_Types_Entry] {
        let (requests, requestSink) = AsyncStream<Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesRequest>.makeStream()
        var first = Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesRequest()
        first.outputMask = entryMask
        requestSink.yield(first)
        return try await client.syncAuthorizedEntries(
            request: StreamingClientRequest { writer in
                for await request in requests { try await writer.write(request) }
            },
            options: options
        ) { response in
            defer { requestSink.finish() }
            var messages = response.messages.makeAsyncIterator()
            guard let opening = try await messages.next() else {
                throw UpstreamError(.protocolViolation, "the entry sync stream ended before any answer")
            }
            if opening.entryRevisions.isEmpty {
                var entries = Dictionary(opening.entries.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
                var more = opening.more
                while more {
                    guard let page = try await messages.next() else { break }
                    guard page.entryRevisions.isEmpty else {
                        throw UpstreamError(.protocolViolation, "the server mixed revisions into a full entry list")
                    }
                    for entry in page.entries { entries[entry.id] = entry }
                    more = page.more
                }
                return entries
            }
            var revisions = opening.entryRevisions
            let pageSize = max(1, opening.entryRevisions.count)
            var more = opening.more
            while more {
                guard let page = try await messages.next() else {
                    throw UpstreamError(.protocolViolation, "the entry sync stream ended in the middle of revisions")
                }
                guard page.entries.isEmpty else {
                    throw UpstreamError(.protocolViolation, "the server sent entries while paging revisions")
                }
                revisions += page.entryRevisions
                more = page.more
            }
            var result: [String: Spire_Api_Types_Entry] = [:]
            var wanted: [String] = []
            for revision in revisions {
                if let entry = known[revision.id], entry.revisionNumber == revision.revisionNumber,
                    entry.createdAt == revision.createdAt
                {
                    result[revision.id] = entry
                } else {
                    wanted.append(revision.id)
                }
            }
            wanted.sort()
            while !wanted.isEmpty {
                var request = Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesRequest()
                request.ids = Array(wanted.prefix(pageSize))
                wanted.removeFirst(request.ids.count)
                requestSink.yield(request)
                var receiving = true
                while receiving {
                    guard let page = try await messages.next() else {
                        throw UpstreamError(.protocolViolation, "the entry sync stream ended while sending entries")
                    }
                    guard page.entryRevisions.isEmpty else {
                        throw UpstreamError(.protocolViolation, "the server sent revisions while sending entries")
                    }
                    for entry in page.entries { result[entry.id] = entry }
                    receiving = page.more
                }
            }
            return result
        }
    }

    // MARK: - Workload SVIDs

    /// The server's answer for one X.509 signing request.
    public typealias SigningResult = Result<[Certificate], UpstreamError>

    /// Signs workload CSRs with `BatchNewX509SVID`, in batches; each result is in its request's place.
    public func signX509SVIDs(
        _ requests: [(entryID: String, csr: CertificateSigningRequest)],
        at now: Date
    ) async throws(UpstreamError) -> [SigningResult] {
        let options = connection.callOptions
        return try await callAsAgent("x509-svid signing", at: now) { client, _ in
            let svidClient = Spire_Api_Server_Svid_V1_SVID.Client(wrapping: client)
            var results: [SigningResult] = []
            for start in stride(from: 0, to: requests.count, by: Self.batchSize) {
                let batch = requests[start..<min(start + Self.batchSize, requests.count)]
                var request = Spire_Api_Server_Svid_V1_BatchNewX509SVIDRequest()
                request.params = batch.map { item in
                    var params = Spire_Api_Server_Svid_V1_NewX509SVIDParams()
                    params.entryID = item.entryID
                    params.csr = item.csr.derEncoded
                    return params
                }
                let response = try await svidClient.batchNewX509SVID(request, options: options)
                guard response.results.count == batch.count else {
                    throw UpstreamError(
                        .protocolViolation,
                        "asked to sign \(batch.count) svids, the server answered \(response.results.count)"
                    )
                }
                for (item, result) in zip(batch, response.results) {
                    if result.status.code != 0 {
                        results.append(
                            .failure(
                                UpstreamError(
                                    .signingRefused,
                                    "the server refused to sign for entry \(item.entryID): \(result.status.message) (code \(result.status.code))"
                                )
                            )
                        )
                    } else {
                        results.append(
                            Result { () throws(UpstreamError) -> [Certificate] in
                                try SPIREProtoConversions.chain(result.svid, what: "x509-svid")
                            }
                        )
                    }
                }
            }
            return results
        }
    }

    /// Entries per `BatchNewX509SVID` call.
    static let batchSize = 500

    /// A JWT-SVID for an entry from `NewJWTSVID`, checked before it is handed out: it verifies against the trust
    /// bundle, names the entry's SPIFFE ID as its subject, and carries every audience asked for (a server that
    /// answered with another identity's token, or fewer audiences, would have a workload present the wrong
    /// credential).
    public func signJWTSVID(
        entryID: String,
        spiffeID: SPIFFEID,
        audience: [String],
        at now: Date
    ) async throws(UpstreamError) -> JWTSVID {
        let options = connection.callOptions
        var request = Spire_Api_Server_Svid_V1_NewJWTSVIDRequest()
        request.entryID = entryID
        request.audience = audience
        let jwtRequest = request
        let (current, svid) = try await callAsAgent("jwt-svid signing", at: now) { client, current in
            let svid = try await Spire_Api_Server_Svid_V1_SVID.Client(wrapping: client).newJWTSVID(
                jwtRequest,
                options: options
            ).svid
            return (current, svid)
        }
        guard svid.issuedAt > 0, svid.expiresAt > 0, svid.issuedAt <= svid.expiresAt, let first = audience.first else {
            throw UpstreamError(.protocolViolation, "the server sent a jwt-svid with invalid times or no audience")
        }
        let bundle = current.bundle
        let validated: JWTSVID
        do {
            validated = try JWTSVIDValidator().validate(
                svid.token,
                audience: first,
                bundles: { $0 == bundle.trustDomain ? bundle : nil },
                at: now
            )
        } catch {
            throw UpstreamError(
                .protocolViolation,
                "the server's jwt-svid does not verify against the bundle: \(error)"
            )
        }
        guard validated.spiffeID == spiffeID else {
            throw UpstreamError(
                .protocolViolation,
                "the server's jwt-svid is for \(validated.spiffeID), not the entry's \(spiffeID)"
            )
        }
        let missing = Set(audience).subtracting(validated.audience)
        guard missing.isEmpty else {
            throw UpstreamError(
                .protocolViolation,
                "the server's jwt-svid lacks the requested audience \(missing.sorted())"
            )
        }
        return validated
    }
}
