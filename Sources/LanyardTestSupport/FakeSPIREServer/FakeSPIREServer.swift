package import Foundation
package import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto
import NIOCore
import NIOSSL
package import SPIFFE
package import SPIFFECrypto
import Synchronization
package import Timing

/// A SPIRE Server stand-in for tests: a real gRPC server over TCP with TLS, its own CA and server SVID
/// (`spiffe://<td>/spire/server`), serving the agent-facing Agent, SVID, Entry and Bundle APIs from the same protos
/// the agent uses. It attests with join tokens, x509pop and k8s_psat, authenticates every other call by the agent
/// SVID presented in mTLS (client certificates are optional at the TLS layer, as on SPIRE Server, so attestation
/// can happen without one), and can be told to add or remove entries, go down, be slow, or fail.
package final class FakeSPIREServer: Sendable {
    /// How calls are answered.
    package enum Fault: Sendable, Equatable {
        case none
        /// Every call fails with this status.
        case failing(RPCError.Code)
        /// Every call waits this long first.
        case slow(Duration)
    }

    /// How a compromised or buggy server could answer `NewJWTSVID`, for tests of what the agent accepts.
    package enum JWTSVIDTampering: Sendable, Equatable {
        /// A validly signed token for another identity.
        case subject(SPIFFEID)
        /// A validly signed token with only the first requested audience.
        case firstAudienceOnly
    }

    /// A registration entry on the server.
    package struct Entry: Sendable {
        package var id: String
        package var spiffeID: SPIFFEID
        /// The agent (or nil: every agent) the entry is for.
        package var parentID: SPIFFEID?
        package var selectors: [Selector]
        package var dnsNames: [String] = []
        package var federatesWith: [String] = []
        package var hint: String = ""
        package var revision: Int64 = 1
        package var createdAt: Int64
    }

    /// What the server knows of an attested agent. Like SPIRE's attested node, a renewal only records the new SVID's
    /// serial as pending: the current one stays valid until the agent first presents the new one, so an agent that
    /// dies before storing a renewed SVID can still come back with the one it stored.
    struct AgentRecord {
        var serial: String
        var pendingSerial: String?
        var reattestable: Bool
    }

    struct State {
        var joinTokens: Set<String> = []
        var psatTokens: [String: (cluster: String, nodeUID: String)] = [:]
        var entries: [String: Entry] = [:]
        var agents: [SPIFFEID: AgentRecord] = [:]
        var federatedBundles: [String: SPIFFEBundle] = [:]
        var fault: Fault = .none
        var jwtTampering: JWTSVIDTampering? = nil
        var mustReattest = false
        var losesRenewals = false
        var entrySyncPageSize = 2
        var syncUnimplemented = false
        var counts: [String: Int] = [:]
        var peers: Set<String> = []
        var batchSizes: [Int] = []
    }

    package let trustDomain: TrustDomain
    package let authority: CertificateAuthority
    package let jwtSigner: JWTSVIDSigner
    /// The CA that signs x509pop node certificates the server accepts.
    package let x509popAuthority: CertificateAuthority
    let serverSVID: X509SVID
    let state = Mutex(State())
    private let running = Mutex<(server: GRPCServer<HTTP2ServerTransport.Posix>, task: Task<Void, any Error>)?>(nil)
    private let boundPort = Mutex<Int>(0)
    /// Lifetime of agent SVIDs and of workload X.509 SVIDs.
    package let agentSVIDTTL: Duration
    package let x509SVIDTTL: Duration
    package let jwtSVIDTTL: Duration
    /// What the server signs with and checks expiry against: share a manual clock with the agent to move both.
    package let clock: any AgentClock

    /// `serverPath` other than `/spire/server` makes an impostor, for testing that agents refuse it. Pass another
    /// server's `x509popAuthority` to make a replacement that trusts the same node certificates (a server whose
    /// CA was replaced).
    package init(
        trustDomain: String = "example.org",
        agentSVIDTTL: Duration = .seconds(3600),
        x509SVIDTTL: Duration = .seconds(3600),
        jwtSVIDTTL: Duration = .seconds(300),
        serverPath: String = "/spire/server",
        x509popAuthority: CertificateAuthority? = nil,
        clock: any AgentClock = SystemClock()
    ) throws {
        let trustDomain = try TrustDomain(trustDomain)
        self.trustDomain = trustDomain
        self.agentSVIDTTL = agentSVIDTTL
        self.x509SVIDTTL = x509SVIDTTL
        self.jwtSVIDTTL = jwtSVIDTTL
        self.clock = clock
        let now = clock.now
        authority = try CertificateAuthority.makeRoot(
            trustDomain: trustDomain,
            keyType: .ecP256,
            ttl: .seconds(86_400),
            now: now
        )
        self.x509popAuthority =
            try x509popAuthority
            ?? CertificateAuthority.makeRoot(
                trustDomain: TrustDomain("nodes.example"),
                keyType: .ecP256,
                ttl: .seconds(86_400),
                now: now
            )
        jwtSigner = try JWTSVIDSigner(privateKey: PrivateKey(generating: .ecP256), keyID: "fake-spire-jwt-1")
        let serverKey = try PrivateKey(generating: .ecP256)
        let serverChain = try authority.issueX509SVID(
            csr: CertificateSigningRequest(
                privateKey: serverKey,
                spiffeID: SPIFFEID(trustDomain: trustDomain, path: serverPath)
            ),
            spiffeID: SPIFFEID(trustDomain: trustDomain, path: serverPath),
            ttl: .seconds(86_000),
            dnsNames: ["localhost"],
            now: now
        )
        serverSVID = try X509SVID(certificates: serverChain, privateKey: serverKey)
    }

    /// The server's CA in PEM, for the agent's `trust_bundle_path`.
    package var bundlePEM: String { authority.certificate.pemEncoded }

    /// The port it listens on (kept across stop and start).
    package var port: Int { boundPort.withLock { $0 } }

    /// Starts serving on 127.0.0.1 at `port`, such as a stopped server's, to take its place.
    package func start(onPort port: Int) async throws {
        boundPort.withLock { $0 = port }
        try await start()
    }

    /// Starts serving on 127.0.0.1 (the same port as before after a ``stop()``, a free one the first time).
    package func start() async throws {
        let (certificateChain, keyPEM) = (serverSVID.certificates, try serverSVID.privateKey.pemEncoded)
        var tls = NIOSSL.TLSConfiguration.makeServerConfiguration(
            certificateChain: try certificateChain.map {
                .certificate(try NIOSSLCertificate(bytes: Array($0.derEncoded), format: .der))
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
        )
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["h2"]
        // Client certificates are asked for but optional (attestation comes without one), and checked when sent:
        // against the server's CA at the server's clock (which a test may have moved), not the system's.
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates([
            try NIOSSLCertificate(bytes: Array(authority.certificate.derEncoded), format: .der)
        ])
        let context = try NIOSSLContext(configuration: tls)
        let trustDomain = trustDomain
        let anchors = [authority.certificate]
        let clock = clock
        let verifyClient: @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void = {
            presented,
            promise in
            do {
                let chain = try presented.map { try Certificate(derEncoded: Data($0.toDERBytes())) }
                _ = try X509SVIDVerifier.verify(
                    chain,
                    bundle: X509Bundle(trustDomain: trustDomain, authorities: anchors),
                    at: clock.now
                )
                promise.succeed(.certificateVerified)
            } catch {
                promise.succeed(.failed)
            }
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // gRPC's transport cannot make client certificates optional, so TLS is added here in front of its HTTP/2
        // handlers; the transport still finds the handler and reports the peer certificate to the services.
        // Never a failed future (gRPC would drop its unfinished async channel, a fatal error in NIO): a connection
        // that closed before TLS could be added, such as an agent killed mid-handshake, is just closed.
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            do {
                try channel.pipeline.syncOperations.addHandler(
                    NIOSSLServerHandler(context: context, customVerificationCallback: verifyClient),
                    position: .first
                )
            } catch {
                channel.close(promise: nil)
            }
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: port),
            transportSecurity: .plaintext,
            config: config
        )
        let server = GRPCServer(
            transport: transport,
            services: [
                FakeAgentService(server: self), FakeSVIDService(server: self), FakeEntryService(server: self),
                FakeBundleService(server: self),
            ]
        )
        let task = Task { try await server.serve() }
        guard let address = try await transport.listeningAddress.ipv4 else {
            throw RPCError(code: .internalError, message: "the fake spire server did not bind")
        }
        boundPort.withLock { $0 = address.port }
        running.withLock { $0 = (server, task) }
    }

    /// Stops listening at once, as an unreachable server would; connections end as their calls finish.
    package func stop() async {
        guard
            let (server, task) = running.withLock({ value in
                defer { value = nil }; return value
            })
        else { return }
        // Graceful first: cancelling the serving task while a connection still hands over new streams leaves one
        // undelivered, and NIO traps on it ("Deinited NIOAsyncWriter without calling finish()"); a test that
        // stopped the server while an agent opened a call crashed the suite that way. A connection still busy
        // after 5 s gets the cancellation.
        server.beginGracefulShutdown()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await task.value }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                if !Task.isCancelled { task.cancel() }
            }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: - Controls

    package func addJoinToken(_ token: String) { state.withLock { _ = $0.joinTokens.insert(token) } }

    /// Accepts `token` from cluster `cluster` as the node `nodeUID`.
    package func addPSAT(_ token: String, cluster: String, nodeUID: String) {
        state.withLock { $0.psatTokens[token] = (cluster, nodeUID) }
    }

    /// Adds an entry and returns its ID.
    @discardableResult
    package func addEntry(
        spiffeID: String,
        selectors: [String],
        parentID: SPIFFEID? = nil,
        dnsNames: [String] = [],
        federatesWith: [String] = [],
        hint: String = ""
    ) throws -> String {
        let id = UUID().uuidString.lowercased()
        let entry = Entry(
            id: id,
            spiffeID: try SPIFFEID(spiffeID),
            parentID: parentID,
            selectors: try selectors.map { try Selector($0) },
            dnsNames: dnsNames,
            federatesWith: federatesWith,
            hint: hint,
            createdAt: Int64(clock.now.timeIntervalSince1970)
        )
        state.withLock { $0.entries[id] = entry }
        return id
    }

    package func removeEntry(_ id: String) { state.withLock { _ = $0.entries.removeValue(forKey: id) } }

    /// Changes an entry's selectors and bumps its revision.
    package func updateEntry(_ id: String, selectors: [String]) throws {
        let parsed = try selectors.map { try Selector($0) }
        state.withLock { state in
            state.entries[id]?.selectors = parsed
            state.entries[id]?.revision += 1
        }
    }

    package func setFederatedBundle(_ bundle: SPIFFEBundle) {
        state.withLock { $0.federatedBundles[bundle.trustDomain.name] = bundle }
    }

    package func setFault(_ fault: Fault) { state.withLock { $0.fault = fault } }

    /// Makes `NewJWTSVID` answer with a tampered token (nil: honest again).
    package func setJWTSVIDTampering(_ tampering: JWTSVIDTampering?) { state.withLock { $0.jwtTampering = tampering } }

    var jwtTampering: JWTSVIDTampering? { state.withLock { $0.jwtTampering } }

    /// Forgets an attested agent, as `spire-server agent evict` does: its SVID is refused from then on.
    package func evictAgent(_ id: SPIFFEID) { state.withLock { _ = $0.agents.removeValue(forKey: id) } }

    /// Makes `RenewAgent` answer PERMISSION_DENIED (the agent must re-attest).
    package func setMustReattest(_ value: Bool) { state.withLock { $0.mustReattest = value } }

    /// Makes `RenewAgent` issue and record the new SVID, then fail UNAVAILABLE, as if the answer was lost on the way
    /// (or the agent died before storing it): the agent is left with an SVID the server has already replaced.
    package func setLosesRenewals(_ value: Bool) { state.withLock { $0.losesRenewals = value } }

    /// The serial numbers (lowercase hex) of an agent's current SVID and of a renewed one it has not yet presented.
    package func agentSerials(_ id: SPIFFEID) -> (current: String, pending: String?)? {
        state.withLock { state in state.agents[id].map { ($0.serial, $0.pendingSerial) } }
    }

    /// Revisions per page in `SyncAuthorizedEntries`; 0 sends every entry in the first answer.
    package func setEntrySyncPageSize(_ size: Int) { state.withLock { $0.entrySyncPageSize = size } }

    /// Answers `SyncAuthorizedEntries` with UNIMPLEMENTED, as older servers do.
    package func setSyncUnimplemented(_ value: Bool) { state.withLock { $0.syncUnimplemented = value } }

    /// How many times each RPC was called, by name (`AttestAgent`, `RenewAgent`, `BatchNewX509SVID`…).
    package func count(_ method: String) -> Int { state.withLock { $0.counts[method] ?? 0 } }

    /// How many connections carried calls: the distinct client addresses (host and port) calls came from.
    package var connectionCount: Int { state.withLock { $0.peers.count } }

    /// The number of params of each `BatchNewX509SVID` call, in order.
    package var batchSizes: [Int] { state.withLock { $0.batchSizes } }

    /// The agents that attested, by SPIFFE ID.
    package var agentIDs: [SPIFFEID] { state.withLock { Array($0.agents.keys) } }

    // MARK: - For the services

    /// Counts the call and the connection it came on, and applies the fault switch.
    func enter(_ method: String, from context: ServerContext) async throws {
        let fault = state.withLock { state in
            state.counts[method, default: 0] += 1
            state.peers.insert(context.remotePeer)
            return state.fault
        }
        switch fault {
        case .none: return
        case .failing(let code): throw RPCError(code: code, message: "fake spire server: \(method) fails on purpose")
        case .slow(let delay): try await Task.sleep(for: delay)
        }
    }

    /// The attested agent behind a call: its mTLS certificate must be the agent's current SVID.
    func authenticatedAgent(_ context: ServerContext) throws -> SPIFFEID {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let peer = transport.peerCertificate
        else { throw RPCError(code: .unauthenticated, message: "an agent svid is required") }
        let certificate = try Certificate(derEncoded: Data(FakeSPIREServer.derBytes(peer)))
        guard let id = certificate.spiffeID else {
            throw RPCError(code: .unauthenticated, message: "the client certificate has no spiffe id")
        }
        let presented = certificate.serialNumberHex
        let known: Bool? = state.withLock { state in
            guard var record = state.agents[id] else { return nil }
            if record.pendingSerial == presented {
                record.serial = presented
                record.pendingSerial = nil
                state.agents[id] = record
            }
            return record.serial == presented
        }
        guard let known else {
            throw RPCError(code: .permissionDenied, message: "agent \(id) is not attested")
        }
        guard known else {
            throw RPCError(
                code: .permissionDenied,
                message: "agent \(id) presented an svid that is neither its current nor its renewed one"
            )
        }
        guard certificate.notAfter > clock.now else {
            throw RPCError(code: .permissionDenied, message: "agent \(id) svid expired")
        }
        return id
    }

    /// Issues an agent SVID for `agentID` over the CSR's key. Attestation makes it the agent's current SVID; a renewal
    /// makes it the pending one, promoted when the agent first authenticates with it.
    func issueAgentSVID(
        _ agentID: SPIFFEID,
        csrDER: Data,
        reattestable: Bool,
        renewal: Bool = false
    ) throws -> Spire_Api_Types_X509SVID {
        let csr = try CertificateSigningRequest(derEncoded: csrDER)
        let chain = try authority.issueX509SVID(csr: csr, spiffeID: agentID, ttl: agentSVIDTTL, now: clock.now)
        let serial = chain[0].serialNumberHex
        state.withLock { state in
            if renewal, var record = state.agents[agentID] {
                record.pendingSerial = serial
                state.agents[agentID] = record
            } else {
                state.agents[agentID] = AgentRecord(serial: serial, pendingSerial: nil, reattestable: reattestable)
            }
        }
        return Self.svid(chain, id: agentID)
    }

    static func svid(_ chain: [Certificate], id: SPIFFEID) -> Spire_Api_Types_X509SVID {
        var svid = Spire_Api_Types_X509SVID()
        svid.certChain = chain.map(\.derEncoded)
        svid.id = wireID(id)
        svid.expiresAt = Int64(chain[0].notAfter.timeIntervalSince1970)
        return svid
    }

    static func wireID(_ id: SPIFFEID) -> Spire_Api_Types_SPIFFEID {
        var wire = Spire_Api_Types_SPIFFEID()
        wire.trustDomain = id.trustDomain.name
        wire.path = id.path
        return wire
    }

    /// The server's own bundle in wire form: its CA and JWT key.
    func wireBundle() throws -> Spire_Api_Types_Bundle {
        var bundle = Spire_Api_Types_Bundle()
        bundle.trustDomain = trustDomain.name
        var x509 = Spire_Api_Types_X509Certificate()
        x509.asn1 = authority.certificate.derEncoded
        bundle.x509Authorities = [x509]
        var jwt = Spire_Api_Types_JWTKey()
        jwt.keyID = jwtSigner.keyID
        jwt.publicKey = try jwtSigner.privateKey.publicKey.spkiDER
        bundle.jwtAuthorities = [jwt]
        bundle.sequenceNumber = 1
        bundle.refreshHint = 300
        return bundle
    }

    /// The entries an agent may see: those parented to it, and those for every agent.
    func entries(for agent: SPIFFEID) -> [Entry] {
        state.withLock { $0.entries.values.filter { $0.parentID == nil || $0.parentID == agent } }
            .sorted { $0.id < $1.id }
    }

    static func wireEntry(_ entry: Entry) -> Spire_Api_Types_Entry {
        var wire = Spire_Api_Types_Entry()
        wire.id = entry.id
        wire.spiffeID = wireID(entry.spiffeID)
        wire.selectors = entry.selectors.map { selector in
            var value = Spire_Api_Types_Selector()
            value.type = selector.type
            value.value = selector.value
            return value
        }
        wire.dnsNames = entry.dnsNames
        wire.federatesWith = entry.federatesWith
        wire.hint = entry.hint
        wire.revisionNumber = entry.revision
        wire.createdAt = entry.createdAt
        return wire
    }
}
