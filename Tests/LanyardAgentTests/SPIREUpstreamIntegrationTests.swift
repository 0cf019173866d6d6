import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Logging
import SPIFFE
import SPIFFECrypto
import Synchronization
import Testing
import Timing
import Upstream

/// The agent in fleet mode against the fake SPIRE server over real mTLS gRPC on loopback.
@Suite("Fleet mode: SPIRE Server as the upstream", .serialized, .timeLimit(.minutes(5)))
struct SPIREUpstreamIntegrationTests {
    static func requireRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the fleet-mode integration tests register entries for uid 0 and need root")
        return false
    }

    /// `[upstream.spire]` for `server`, with the bootstrap bundle written into `directory`.
    static func upstream(
        _ server: FakeSPIREServer,
        directory: String,
        attestor: String = "node_attestor = \"join_token\"\njoin_token = \"token-1\"",
        syncInterval: String = "250ms",
        requestTimeout: String = "2s",
        bundlePEM: String? = nil
    ) throws -> String {
        try Data((bundlePEM ?? server.bundlePEM).utf8).write(to: URL(fileURLWithPath: directory + "/bootstrap.pem"))
        return """
            [upstream.spire]
            server_address = "127.0.0.1:\(server.port)"
            trust_bundle_path = "\(directory)/bootstrap.pem"
            sync_interval = "\(syncInterval)"
            request_timeout = "\(requestTimeout)"
            \(attestor)
            """
    }

    /// A fake server; give it the agent's manual clock to move both (certificates, expiry and TLS follow it).
    static func startServer(
        agentSVIDTTL: Duration = .seconds(3600),
        x509SVIDTTL: Duration = .seconds(3600),
        clock: any AgentClock = SystemClock()
    ) async throws -> FakeSPIREServer {
        let server = try FakeSPIREServer(agentSVIDTTL: agentSVIDTTL, x509SVIDTTL: x509SVIDTTL, clock: clock)
        server.addJoinToken("token-1")
        try await server.start()
        return server
    }

    /// Waits until `condition` holds, checking every 50 ms, for at most `limit`.
    static func eventually(_ limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool
    {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test(
        "insecure_bootstrap: the first contact is not verified, what it saw is pinned, and an impostor later is refused"
    )
    func insecureBootstrap() async throws {
        guard Self.requireRoot() else { return }
        let server = try await Self.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = """
            [upstream.spire]
            server_address = "127.0.0.1:\(server.port)"
            insecure_bootstrap = true
            sync_interval = "250ms"
            request_timeout = "2s"
            node_attestor = "join_token"
            join_token = "token-1"
            """
        let logs = LogCapture()
        let agent = try await TestAgent.start("", directory: directory, logs: logs, upstream: upstream)
        #expect(try await agent.client.fetchX509SVID().svids.map(\.spiffeID) == ["spiffe://example.org/web"])
        await agent.stop()
        #expect(logs.all.contains { $0.contains("insecure_bootstrap: attesting without verifying the server") })

        // Another server of the same trust domain, with a CA of its own, where the real one was (a hijacked
        // address): the restarted agent serves its stored SVIDs and never talks to it.
        let impostor = try await Self.startServer()
        let hijacked = upstream.replacingOccurrences(of: ":\(server.port)\"", with: ":\(impostor.port)\"")
        let impostorLogs = LogCapture()
        let restarted = try await TestAgent.start("", directory: directory, logs: impostorLogs, upstream: hijacked)
        #expect(try await restarted.client.fetchX509SVID().svids.map(\.spiffeID) == ["spiffe://example.org/web"])
        #expect(
            try await Self.eventually { impostorLogs.all.contains { $0.contains("refused the server") } },
            "\(impostorLogs.all)"
        )
        await restarted.stop()
        #expect(!impostorLogs.all.contains { $0.contains("insecure_bootstrap: attesting") }, "it bootstrapped again")
        for method in ["AttestAgent", "SyncAuthorizedEntries", "GetAuthorizedEntries", "BatchNewX509SVID"] {
            #expect(impostor.count(method) == 0, "the impostor answered \(method)")
        }
        await impostor.stop()
        await server.stop()
    }

    /// A plain HTTP server for the files of `directory`, on the Unix socket `socket`.
    static func startBundleServer(socket: String, directory: String) async throws -> ChildProcess {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/unix-http-server.py").path
        let server = try await ChildProcess.start(["/usr/bin/python3", script, socket, directory])
        #expect(try await Self.eventually { FileManager.default.fileExists(atPath: socket) }, "no bundle server")
        return server
    }

    @Test(
        "trust_bundle_url over trust_bundle_unix_socket, as PEM and as a SPIFFE bundle; a wrong bundle there is refused"
    )
    func trustBundleURL() async throws {
        guard Self.requireRoot() else { return }
        let trustDomain = try TrustDomain("example.org")
        for format in TrustBundleSource.Format.allCases {
            let server = try await Self.startServer()
            try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
            let directory = TestAgent.makeDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try FileManager.default.createDirectory(atPath: directory + "/www", withIntermediateDirectories: true)
            let authorities = try Certificate.chain(pemEncoded: server.bundlePEM).map(\.derEncoded)
            let document =
                format == .pem
                ? Data(server.bundlePEM.utf8)
                : try SPIFFEBundle(trustDomain: trustDomain, x509Authorities: authorities).jwksData(format: .spiffe)
            try document.write(to: URL(fileURLWithPath: directory + "/www/bundle"))
            let bundleServer = try await Self.startBundleServer(
                socket: directory + "/bundle.sock",
                directory: directory + "/www"
            )
            defer { bundleServer.stop() }
            let upstream = """
                [upstream.spire]
                server_address = "127.0.0.1:\(server.port)"
                trust_bundle_url = "http://localhost/bundle"
                trust_bundle_unix_socket = "\(directory)/bundle.sock"
                trust_bundle_format = "\(format.rawValue)"
                sync_interval = "250ms"
                request_timeout = "2s"
                node_attestor = "join_token"
                join_token = "token-1"
                """
            let agent = try await TestAgent.start("", directory: directory, upstream: upstream)
            #expect(try await agent.client.fetchX509SVID().svids.map(\.spiffeID) == ["spiffe://example.org/web"])
            await agent.stop()
            await server.stop()
        }

        // The URL serves another CA, or nothing: the agent refuses the server, or says the bundle is missing.
        let genuine = try await Self.startServer()
        let impostor = try await Self.startServer()
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/www", withIntermediateDirectories: true)
        try Data(impostor.bundlePEM.utf8).write(to: URL(fileURLWithPath: directory + "/www/bundle"))
        let bundleServer = try await Self.startBundleServer(
            socket: directory + "/bundle.sock",
            directory: directory + "/www"
        )
        defer { bundleServer.stop() }
        for (file, code) in [("bundle", UpstreamErrorCode.untrustedServer), ("missing", .attestation)] {
            let upstream = SPIREServerUpstream(
                config: SPIREServerConfig(
                    host: "127.0.0.1",
                    port: genuine.port,
                    trustDomain: trustDomain,
                    trustBundle: .url("http://localhost/\(file)", unixSocket: directory + "/bundle.sock", format: .pem),
                    nodeAttestor: .joinToken("token-1"),
                    dataDirectory: directory + "/agent-\(file)",
                    requestTimeout: .seconds(2)
                ),
                logger: Logger(label: "test")
            )
            do {
                try await upstream.ensureIdentity(at: Date())
                Issue.record("attested with the bundle from /\(file)")
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
        #expect(genuine.count("AttestAgent") == 0, "the join token was sent to a server the bundle does not trust")
        await impostor.stop()
        await genuine.stop()
    }

    @Test("join-token attestation, then workloads get X.509 SVIDs (batched) and JWT-SVIDs signed by the server")
    func joinToken() async throws {
        guard Self.requireRoot() else { return }
        let server = try await Self.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        try server.addEntry(spiffeID: "spiffe://example.org/db", selectors: ["unix:uid:0"], hint: "db")
        try server.addEntry(spiffeID: "spiffe://example.org/other", selectors: ["unix:uid:4242"])
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory)
        )

        let response = try await agent.client.fetchX509SVID()
        #expect(Set(response.svids.map(\.spiffeID)) == ["spiffe://example.org/web", "spiffe://example.org/db"])
        let chain = try Certificate.chain(derConcatenated: response.svids[0].x509Svid)
        let bundle = X509Bundle(trustDomain: server.trustDomain, authorities: [server.authority.certificate])
        #expect(try X509SVIDVerifier.verify(chain, bundle: bundle, at: Date()).trustDomain.name == "example.org")
        #expect(server.count("AttestAgent") == 1)
        #expect(server.batchSizes.first == 3, "all three entries' svids in one batch: \(server.batchSizes)")
        #expect(server.agentIDs.map(\.description) == ["spiffe://example.org/spire/agent/join_token/token-1"])

        let jwt = try await agent.client.fetchJWTSVID(audience: ["payments"], spiffeID: "spiffe://example.org/web")
        #expect(jwt.svids.count == 1)
        #expect(server.count("NewJWTSVID") == 1)
        let validated = try await agent.client.validateJWTSVID(token: jwt.svids[0].svid, audience: "payments")
        #expect(validated.spiffeID == "spiffe://example.org/web")

        let identity = directory + "/data/agent/agent-identity.json"
        let mode = try FileManager.default.attributesOfItem(atPath: identity)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        await agent.stop()

        // A restart reuses the stored identity: the join token is spent and is not needed again.
        let again = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory)
        )
        #expect(try await again.client.fetchX509SVID().svids.count == 2)
        #expect(server.count("AttestAgent") == 1)
        await again.stop()
        await server.stop()
        agent.removeDirectory()
    }

    @Test("JWT-SVID mints and syncs share one mTLS connection while the agent SVID stays the same")
    func sharedConnection() async throws {
        guard Self.requireRoot() else { return }
        let server = try await Self.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory, syncInterval: "100ms")
        )
        // 16 concurrent cache misses, each a NewJWTSVID call.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<16 {
                group.addTask {
                    try await agent.client.fetchJWTSVID(audience: ["audience-\(index)"]).svids.count
                }
            }
            for try await count in group { #expect(count == 1) }
        }
        #expect(server.count("NewJWTSVID") == 16)
        let syncs = server.count("SyncAuthorizedEntries")
        #expect(try await Self.eventually { server.count("SyncAuthorizedEntries") >= syncs + 3 })
        // One connection for the attestation (no client certificate), one for every call as the agent.
        #expect(server.count("AttestAgent") == 1)
        #expect(server.connectionCount == 2)
        await agent.stop()
        await server.stop()
        agent.removeDirectory()
    }

    @Test("a server's JWT-SVID for another identity, or without every requested audience, is never handed out")
    func tamperedJWTSVIDs() async throws {
        guard Self.requireRoot() else { return }
        let server = try await Self.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            logs: logs,
            upstream: try Self.upstream(server, directory: directory)
        )
        for (tampering, expected) in [
            (FakeSPIREServer.JWTSVIDTampering.subject(try SPIFFEID("spiffe://example.org/admin")), "not the entry's"),
            (.firstAudienceOnly, "lacks the requested audience"),
        ] {
            server.setJWTSVIDTampering(tampering)
            do {
                let answer = try await agent.client.fetchJWTSVID(audience: ["payments", "billing"])
                Issue.record("a tampered token was handed out: \(answer.svids.map(\.spiffeID))")
            } catch let error as RPCError {
                #expect(error.code == .unavailable, "\(error)")
            }
            #expect(
                logs.all.contains { $0.contains("jwt-svid signing failed") && $0.contains(expected) },
                "\(logs.all)"
            )
        }
        server.setJWTSVIDTampering(nil)
        let honest = try await agent.client.fetchJWTSVID(audience: ["payments", "billing"])
        #expect(honest.svids.map(\.spiffeID) == ["spiffe://example.org/web"])
        await agent.stop()
        await server.stop()
    }

    @Test("x509pop and k8s_psat attest with SPIRE's agent IDs")
    func otherAttestors() async throws {
        guard Self.requireRoot() else { return }
        let server = try await Self.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])

        let directory = TestAgent.makeDirectory()
        let nodeKey = try PrivateKey(generating: .ecP256)
        let nodeChain = try server.x509popAuthority.issueX509SVID(
            csr: CertificateSigningRequest(privateKey: nodeKey, spiffeID: SPIFFEID("spiffe://nodes.example/node-1")),
            spiffeID: SPIFFEID("spiffe://nodes.example/node-1"),
            ttl: .seconds(3600),
            now: Date()
        )
        try Data(nodeChain.map(\.pemEncoded).joined().utf8).write(to: URL(fileURLWithPath: directory + "/node.crt"))
        try Data(nodeKey.pemEncoded.utf8).write(to: URL(fileURLWithPath: directory + "/node.key"))
        let x509pop = """
            node_attestor = "x509pop"
            x509pop_certificate_path = "\(directory)/node.crt"
            x509pop_private_key_path = "\(directory)/node.key"
            """
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory, attestor: x509pop)
        )
        #expect(try await agent.client.fetchX509SVID().svids.count == 1)
        let fingerprint = Digest.sha1(nodeChain[0].derEncoded).map { String(format: "%02x", $0) }.joined()
        #expect(server.agentIDs.map(\.description).contains("spiffe://example.org/spire/agent/x509pop/\(fingerprint)"))
        await agent.stop()
        agent.removeDirectory()

        let psatDirectory = TestAgent.makeDirectory()
        try Data("projected-token-abc\n".utf8).write(to: URL(fileURLWithPath: psatDirectory + "/psat"))
        server.addPSAT("projected-token-abc", cluster: "prod", nodeUID: "9f1c-node")
        let psat = """
            node_attestor = "k8s_psat"
            k8s_psat_cluster = "prod"
            k8s_psat_token_path = "\(psatDirectory)/psat"
            """
        let psatAgent = try await TestAgent.start(
            "",
            directory: psatDirectory,
            upstream: try Self.upstream(server, directory: psatDirectory, attestor: psat)
        )
        #expect(try await psatAgent.client.fetchX509SVID().svids.count == 1)
        #expect(server.agentIDs.map(\.description).contains("spiffe://example.org/spire/agent/k8s_psat/prod/9f1c-node"))
        await psatAgent.stop()
        psatAgent.removeDirectory()
        await server.stop()
    }

    @Test("an entry added on the server reaches an open stream within a sync interval; a removed one leaves it")
    func entryChanges() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await Self.startServer(clock: clock)
        server.setEntrySyncPageSize(1)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory),
            clock: clock
        )
        let seen = Mutex<[[String]]>([])
        let watcher = Task {
            try await agent.client.watchX509SVID(count: 3) { message in
                seen.withLock { $0.append(message.svids.map(\.spiffeID).sorted()) }
            }
        }
        defer { watcher.cancel() }
        try #require(try await Self.eventually { seen.withLock { $0.count } == 1 })
        // One sync interval of the agent's clock, and no more, brings an added entry to the open stream.
        let added = try server.addEntry(spiffeID: "spiffe://example.org/api", selectors: ["unix:uid:0"])
        try await clock.waitForSleepers()
        #expect(clock.advanceToNextWake() == .milliseconds(250))
        try #require(try await Self.eventually { seen.withLock { $0.count } == 2 })
        #expect(seen.withLock { $0[1] } == ["spiffe://example.org/api", "spiffe://example.org/web"])
        server.removeEntry(added)
        try await clock.waitForSleepers()
        clock.advanceToNextWake()
        try #require(try await Self.eventually { seen.withLock { $0.count } == 3 })
        #expect(seen.withLock { $0[2] } == ["spiffe://example.org/web"])
        _ = try await watcher.value
        await agent.stop()
        agent.removeDirectory()

        // A server without SyncAuthorizedEntries: the agent falls back to GetAuthorizedEntries.
        server.setSyncUnimplemented(true)
        let fallbackDirectory = TestAgent.makeDirectory()
        server.addJoinToken("token-1")
        let fallback = try await TestAgent.start(
            "",
            directory: fallbackDirectory,
            upstream: try Self.upstream(server, directory: fallbackDirectory)
        )
        #expect(try await fallback.client.fetchX509SVID().svids.count == 1)
        #expect(server.count("GetAuthorizedEntries") >= 1)
        await fallback.stop()
        fallback.removeDirectory()
        await server.stop()
    }

    @Test("the agent SVID renews at half-life through RenewAgent, and is stored")
    func agentRenewal() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await Self.startServer(agentSVIDTTL: .seconds(3), clock: clock)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory),
            clock: clock
        )
        let path = directory + "/data/agent/agent-identity.json"
        let first = FileManager.default.contents(atPath: path)
        // Half-life counts from receipt (the server backdates notBefore; that must not bring renewal forward). Time
        // moves sync by sync up to it: no renewal on the way.
        let stored = try #require(
            try AgentIdentity.load(directory: directory + "/data/agent", trustDomain: server.trustDomain)
        )
        while true {
            try await clock.waitForSleepers()
            guard let next = clock.nextWake, clock.now + (next - clock.uptime).timeInterval < stored.renewAt else {
                break
            }
            clock.advanceToNextWake()
            try await clock.waitForSleepers()
            #expect(server.count("RenewAgent") == 0, "renewed before half-life, at \(clock.now)")
        }
        let time = clock.autoAdvance()
        defer { time.cancel() }
        #expect(try await Self.eventually { server.count("RenewAgent") >= 2 })
        #expect(clock.now >= stored.renewAt, "two renewals, none before the first half-life")
        #expect(FileManager.default.contents(atPath: path) != first)
        // Calls keep being authenticated with the renewed SVID.
        let batches = server.count("BatchNewX509SVID") + server.count("SyncAuthorizedEntries")
        #expect(
            try await Self.eventually {
                server.count("SyncAuthorizedEntries") + server.count("BatchNewX509SVID") > batches + 2
            }
        )
        #expect(try await agent.client.fetchX509SVID().svids.count == 1)
        // A renewed SVID opens one new connection; calls in between share the connection of their SVID.
        #expect(server.connectionCount <= 2 + server.count("RenewAgent"))
        let agentID = try #require(server.agentIDs.first)
        #expect(
            try await Self.eventually {
                let serials = server.agentSerials(agentID)
                let stored = try Self.storedSerial(path)
                return serials?.pending == nil && serials?.current == stored
            }
        )
        time.cancel()
        await agent.stop()
        agent.removeDirectory()
        await server.stop()
    }

    @Test("a renewed agent SVID that never reaches the agent leaves it its current one; a later renewal takes")
    func lostRenewal() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await Self.startServer(agentSVIDTTL: .seconds(8), clock: clock)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        server.setLosesRenewals(true)
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory),
            clock: clock
        )
        let time = clock.autoAdvance()
        defer { time.cancel() }
        let path = directory + "/data/agent/agent-identity.json"
        let stored = try Self.storedSerial(path)
        let agentID = try #require(server.agentIDs.first)
        // From half-life (4 s) on, every renewal is issued and recorded by the server, then lost.
        #expect(try await Self.eventually { server.count("RenewAgent") >= 2 })
        #expect(server.agentSerials(agentID)?.current == stored)
        #expect(server.agentSerials(agentID)?.pending != nil, "the server holds a renewed svid the agent never got")
        // The agent keeps authenticating with the SVID it has, like an agent restarted before it stored a renewal.
        let calls = { server.count("SyncAuthorizedEntries") + server.count("BatchNewX509SVID") }
        let before = calls()
        #expect(try await Self.eventually { calls() >= before + 3 })
        #expect(try await agent.client.fetchX509SVID().svids.count == 1)
        server.setLosesRenewals(false)
        #expect(
            try await Self.eventually {
                let now = try Self.storedSerial(path)
                return now != stored && server.agentSerials(agentID)?.current == now
            },
            "the next renewal is stored and becomes current"
        )
        #expect(server.count("AttestAgent") == 1)
        time.cancel()
        await agent.stop()
        agent.removeDirectory()
        await server.stop()
    }

    /// The serial number of the agent SVID stored in `agent-identity.json` at `path`.
    static func storedSerial(_ path: String) throws -> String {
        struct Stored: Decodable {
            var svidPEM: String
            enum CodingKeys: String, CodingKey { case svidPEM = "svid_pem" }
        }
        let data = try #require(FileManager.default.contents(atPath: path))
        let stored = try JSONDecoder().decode(Stored.self, from: data)
        return try Certificate.chain(pemEncoded: stored.svidPEM)[0].serialNumberHex
    }

    @Test("a re-attestable agent the server refuses to renew attests again by itself")
    func reattestsWhenTold() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await Self.startServer(agentSVIDTTL: .seconds(2), clock: clock)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        server.setMustReattest(true)
        let directory = TestAgent.makeDirectory()
        try Data("projected-token\n".utf8).write(to: URL(fileURLWithPath: directory + "/psat"))
        server.addPSAT("projected-token", cluster: "prod", nodeUID: "node-9")
        let psat =
            "node_attestor = \"k8s_psat\"\nk8s_psat_cluster = \"prod\"\nk8s_psat_token_path = \"\(directory)/psat\""
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory, attestor: psat),
            clock: clock
        )
        let time = clock.autoAdvance()
        defer { time.cancel() }
        #expect(try await Self.eventually { server.count("RenewAgent") >= 1 && server.count("AttestAgent") >= 2 })
        time.cancel()
        #expect(try await agent.client.fetchX509SVID().svids.count == 1)
        await agent.stop()
        agent.removeDirectory()
        await server.stop()
    }

    @Test("through an outage longer than half an SVID's life the workload keeps a valid SVID, renewed after recovery")
    func outage() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await Self.startServer(x509SVIDTTL: .seconds(12), clock: clock)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try Self.upstream(server, directory: directory),
            clock: clock
        )
        let before = try Certificate.chain(derConcatenated: try await agent.client.fetchX509SVID().svids[0].x509Svid)[0]
        await server.stop()
        // Down for 7 s of the agent's time: past the 6 s half-life, and past the renewal time (40–48 % of 12 s),
        // with the agent backing off between failed syncs.
        let down = clock.uptime
        #expect(try await clock.run(until: { clock.uptime - down >= .seconds(7) }, limit: .seconds(15)))
        let during = try Certificate.chain(derConcatenated: try await agent.client.fetchX509SVID().svids[0].x509Svid)[0]
        #expect(during.serialNumber == before.serialNumber)
        #expect(during.notAfter > clock.now, "the cached svid is still valid")
        try await server.start()
        let time = clock.autoAdvance()
        defer { time.cancel() }
        #expect(
            try await Self.eventually {
                let now = try Certificate.chain(
                    derConcatenated: try await agent.client.fetchX509SVID().svids[0].x509Svid
                )[0]
                return now.serialNumber != before.serialNumber
            },
            "renewed once the server is back"
        )
        time.cancel()
        await agent.stop()
        agent.removeDirectory()
        await server.stop()
    }

    @Test("a server with the wrong SPIFFE ID, or a certificate the bundle does not trust, is refused")
    func refusesImpostors() async throws {
        let impostor = try FakeSPIREServer(serverPath: "/impostor")
        impostor.addJoinToken("token-1")
        try await impostor.start()
        let genuine = try FakeSPIREServer()
        try await genuine.start()
        for (server, bundle, expected) in [
            (
                impostor, impostor.bundlePEM,
                "presented spiffe://example.org/impostor, not spiffe://example.org/spire/server"
            ),
            (genuine, impostor.bundlePEM, "its certificate is not trusted"),
        ] {
            let directory = TestAgent.makeDirectory()
            try Data(bundle.utf8).write(to: URL(fileURLWithPath: directory + "/bootstrap.pem"))
            let upstream = SPIREServerUpstream(
                config: SPIREServerConfig(
                    host: "127.0.0.1",
                    port: server.port,
                    trustDomain: try TrustDomain("example.org"),
                    trustBundle: .file(path: directory + "/bootstrap.pem", format: .pem),
                    nodeAttestor: .joinToken("token-1"),
                    dataDirectory: directory + "/agent",
                    requestTimeout: .seconds(2)
                ),
                logger: Logger(label: "test")
            )
            do {
                try await upstream.ensureIdentity(at: Date())
                Issue.record("attested against an untrusted server")
            } catch {
                #expect(error.code == .untrustedServer)
                #expect(error.message.contains(expected), "\(error.message)")
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/agent/agent-identity.json"))
            try? FileManager.default.removeItem(atPath: directory)
        }
        #expect(impostor.count("AttestAgent") == 0, "the join token never reached the impostor")
        await impostor.stop()
        await genuine.stop()
    }
}
