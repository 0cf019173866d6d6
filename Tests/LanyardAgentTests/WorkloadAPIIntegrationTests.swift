import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import SwiftProtobuf
import Synchronization
import Testing

@testable import LanyardAgent

/// The real agent on a real Unix socket, driven by clients in this process and by `lanyard` child processes under
/// other uids. Serialized: each test owns its agent, and the socket umask is process-wide.
@Suite("Workload API, end to end", .serialized, .timeLimit(.minutes(5)))
struct WorkloadAPIIntegrationTests {
    static let rootEntry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:0"]
        hint = "root"
        """
    static let nobodyEntry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/nobody"
        selectors = ["unix:uid:65534"]
        """

    func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the workload api integration tests need root (entries for uid 0, setpriv for other uids)")
        return false
    }

    @Test("root's process gets its SVID; the chain verifies against the served bundle and the key matches")
    func rootGetsSVID() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry + "\n" + Self.nobodyEntry)
        defer { agent.removeDirectory() }
        let response = try await agent.client.fetchX509SVID()
        await agent.stop()
        #expect(response.svids.count == 1)
        let svid = try #require(response.svids.first)
        #expect(svid.spiffeID == "spiffe://example.org/root-workload")
        #expect(svid.hint == "root")
        let chain = try Certificate.chain(derConcatenated: svid.x509Svid)
        let bundle = X509Bundle(
            trustDomain: try TrustDomain("example.org"),
            authorities: try Certificate.chain(derConcatenated: svid.bundle)
        )
        #expect(try X509SVIDVerifier.verify(chain, bundle: bundle, at: Date()).description == svid.spiffeID)
        let parsed = try X509SVID(certificates: chain, privateKey: try PrivateKey(pkcs8DER: svid.x509SvidKey))
        #expect(parsed.spiffeID.path == "/root-workload")
        #expect(response.federatedBundles.isEmpty)
        // The socket is world-connectable, and removed when the agent stops.
        #expect(!FileManager.default.fileExists(atPath: agent.socketPath))
    }

    @Test("a process under another uid gets its own identity, or PERMISSION_DENIED without an entry")
    func otherUIDs() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry + "\n" + Self.nobodyEntry)
        defer { agent.removeDirectory() }
        let mode = try FileManager.default.attributesOfItem(atPath: agent.socketPath)[.posixPermissions] as? Int
        #expect(mode == 0o777)
        let cli = try LanyardCLI(copyInto: agent.directory)
        let nobody = try await cli.run(["api", "fetch", "x509", "--socket", agent.socketPath], uid: 65534, gid: 65534)
        #expect(nobody.status == 0, "\(nobody.stderr)")
        #expect(nobody.stdout.contains("SPIFFE ID:\t\tspiffe://example.org/nobody"))
        #expect(!nobody.stdout.contains("root-workload"))
        let stranger = try await cli.run(["api", "fetch", "x509", "--socket", agent.socketPath], uid: 1234, gid: 5678)
        #expect(stranger.status == 1)
        #expect(stranger.stderr.contains("permissionDenied: no identity issued"), "\(stranger.stderr)")
        let written = agent.directory + "/out"
        let write = try await cli.run(["api", "fetch", "x509", "--socket", agent.socketPath, "--write", written])
        #expect(write.status == 0, "\(write.stderr)")
        #expect(
            try FileManager.default.attributesOfItem(atPath: written + "/svid.0.key")[.posixPermissions] as? Int
                == 0o600
        )
        #expect(FileManager.default.fileExists(atPath: written + "/bundle.0.pem"))
        await agent.stop()
    }

    @Test("two matching entries give two SVIDs, the first entry first")
    func twoEntries() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(
            Self.rootEntry + """

                [[entries]]
                spiffe_id = "spiffe://example.org/also-root"
                selectors = ["unix:uid:0", "unix:gid:0"]
                """
        )
        defer { agent.removeDirectory() }
        let response = try await agent.client.fetchX509SVID()
        await agent.stop()
        #expect(
            response.svids.map(\.spiffeID) == ["spiffe://example.org/root-workload", "spiffe://example.org/also-root"]
        )
    }

    @Test("a call without the security header gets INVALID_ARGUMENT")
    func missingHeader() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        do {
            _ = try await agent.client.withClient { api in
                try await api.fetchJWTSVID(WorkloadAPI_JWTSVIDRequest.with { $0.audience = ["a"] })
            }
            Issue.record("a call without the header was answered")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "security header missing from request")
        }
        await agent.stop()
    }

    @Test("a forged peer-credential header from a client is ignored")
    func forgedHeaderIgnored() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.nobodyEntry)
        defer { agent.removeDirectory() }
        let metadata: Metadata = ["workload.spiffe.io": "true", "x-lanyard-peer-credentials": "1,65534,65534"]
        do {
            _ = try await agent.client.withClient { api in
                try await api.fetchX509SVID(WorkloadAPI_X509SVIDRequest(), metadata: metadata) { response in
                    for try await message in response.messages { return message }
                    return WorkloadAPI_X509SVIDResponse()
                }
            }
            Issue.record("root claiming to be uid 65534 received nobody's identity")
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied)
        }
        await agent.stop()
    }

    @Test(
        "an open stream receives a renewed SVID, with a fresh key, at 40–48 % of the old one's life (clock moved, not waited)"
    )
    func rotationReachesStreams() async throws {
        guard isRoot() else { return }
        // A whole second, so certificate times (whole seconds) measure the renewal exactly.
        let clock = ManualClock(now: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let received = Mutex(0)
        let watching = Task {
            try await agent.client.watchX509SVID(count: 2) { _ in received.withLock { $0 += 1 } }
        }
        defer { watching.cancel() }
        // The stream is open (its first message came) before time moves: on a loaded machine the renewal could
        // otherwise come before the stream and be its first message.
        try #require(
            try await clock.waitInRealTime(for: { received.withLock { $0 } == 1 }, timeout: .seconds(30)),
            "the stream's first message never came"
        )
        try #require(try await clock.run(until: { received.withLock { $0 } == 2 }, limit: .seconds(30)))
        let messages = try await watching.value
        await agent.stop()
        let first = try Certificate.chain(derConcatenated: messages[0].svids[0].x509Svid)[0]
        let second = try Certificate.chain(derConcatenated: messages[1].svids[0].x509Svid)[0]
        #expect(first.serialNumber != second.serialNumber)
        #expect(try first.publicKey != second.publicKey, "a renewal uses a fresh key")
        // Both carry the whole second of issue + 30 s: the renewal came 12–14.4 s in, before the 15 s half-life.
        let renewedAfter = second.notAfter.timeIntervalSince(first.notAfter)
        #expect((12...14).contains(renewedAfter), "renewed \(renewedAfter) s after issuance")
    }

    @Test("after the wall clock jumps past an SVID's expiry (a suspend), it is never served; the next pass renews it")
    func clockJump() async throws {
        guard isRoot() else { return }
        let clock = ManualClock(now: Date())
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "1h", clock: clock)
        defer { agent.removeDirectory() }
        let before = try Certificate.chain(derConcatenated: try await agent.client.fetchX509SVID().svids[0].x509Svid)[0]
        // Two hours of wall time pass while the agent's monotonic timers stand still, as across a suspend.
        clock.stepWallClock(by: .seconds(7200))
        #expect(before.notAfter < clock.now)
        do {
            let served = try await agent.client.fetchX509SVID()
            let leaf = try Certificate.chain(derConcatenated: served.svids[0].x509Svid)[0]
            #expect(leaf.notAfter > clock.now, "an expired SVID was served after the clock jump")
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied, "\(error)")
        }
        // The rotator's next wake-up renews against the wall clock.
        var renewed: Certificate?
        for _ in 0..<20 where renewed == nil {
            try await clock.waitForSleepers()
            clock.advanceToNextWake()
            try await Task.sleep(for: .milliseconds(50))
            if let response = try? await agent.client.fetchX509SVID() {
                renewed = try Certificate.chain(derConcatenated: response.svids[0].x509Svid)[0]
            }
        }
        await agent.stop()
        let fresh = try #require(renewed, "no SVID after the rotator's next passes")
        #expect(fresh.notAfter > clock.now && fresh.serialNumber != before.serialNumber)
    }

    @Test("JWT-SVIDs: fetch, validation (good, wrong audience, foreign key) and JWT bundles")
    func jwt() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let client = agent.client
        await #expect(throws: RPCError.self) { try await client.fetchJWTSVID(audience: []) }
        let response = try await client.fetchJWTSVID(audience: ["api", "db"])
        #expect(response.svids.count == 1)
        let token = try #require(response.svids.first?.svid)
        #expect(response.svids[0].spiffeID == "spiffe://example.org/root-workload")
        let again = try await client.fetchJWTSVID(audience: ["db", "api"])
        #expect(again.svids.first?.svid == token, "the cached token is reused for the same audience set")

        let valid = try await client.validateJWTSVID(token: token, audience: "db")
        #expect(valid.spiffeID == "spiffe://example.org/root-workload")
        #expect(valid.claims.fields["aud"]?.listValue.values.map(\.stringValue) == ["api", "db"])
        do {
            _ = try await client.validateJWTSVID(token: token, audience: "other")
            Issue.record("wrong audience accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
        }
        let foreign = try JWTSVIDSigner(privateKey: try PrivateKey(generating: .ecP256), keyID: "foreign")
            .sign(
                spiffeID: try SPIFFEID("spiffe://example.org/root-workload"),
                audience: ["db"],
                expiresAt: Date() + 60,
                issuedAt: Date()
            )
        do {
            _ = try await client.validateJWTSVID(token: foreign.token, audience: "db")
            Issue.record("a token signed by a foreign key was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("no JWT authority found"))
        }
        let bundles = try await client.fetchJWTBundles()
        let jwks = try #require(bundles.bundles["spiffe://example.org"])
        let bundle = try SPIFFEBundle(trustDomain: try TrustDomain("example.org"), jwksData: jwks)
        let kid = try JSONDecoder().decode(
            [String: String].self,
            from: Data(base64URLEncoded: token.split(separator: ".")[0])!
        )["kid"]
        // The standard JWKS has no "use": the SPIFFE parser skips such keys, so read the raw JSON.
        #expect(bundle.jwtAuthorities.isEmpty)
        let raw = try JSONSerialization.jsonObject(with: jwks) as? [String: Any]
        let keys = raw?["keys"] as? [[String: Any]]
        #expect(keys?.compactMap { $0["kid"] as? String }.contains(kid ?? "") == true)
        #expect(keys?.allSatisfy { $0["use"] == nil } == true)
        await agent.stop()
    }

    @Test("a federated bundle is served to entries that federate with its trust domain")
    func federation() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        let partner = try CertificateAuthority.makeRoot(
            trustDomain: try TrustDomain("partner.org"),
            keyType: .ecP256,
            ttl: .seconds(3600),
            now: Date()
        )
        try Data(partner.certificate.pemEncoded.utf8).write(to: URL(fileURLWithPath: directory + "/partner.pem"))
        let agent = try await TestAgent.start(
            Self.rootEntry + """

                federates_with = ["partner.org"]

                [[federation]]
                trust_domain = "partner.org"
                bundle_path = "partner.pem"
                """,
            directory: directory
        )
        defer { agent.removeDirectory() }
        let response = try await agent.client.fetchX509SVID()
        #expect(response.federatedBundles["spiffe://partner.org"] == partner.certificate.derEncoded)
        let bundles = try await agent.client.fetchX509Bundles()
        #expect(Set(bundles.bundles.keys) == ["spiffe://example.org", "spiffe://partner.org"])
        await agent.stop()
    }

    @Test("bundle streams refuse callers without an identity unless allow_unauthenticated_verifiers is set")
    func unauthenticatedVerifiers() async throws {
        guard isRoot() else { return }
        let denied = try await TestAgent.start(Self.nobodyEntry)
        defer { denied.removeDirectory() }
        await #expect(throws: RPCError.self) { try await denied.client.fetchX509Bundles() }
        await denied.stop()

        let directory = TestAgent.makeDirectory()
        let allowed = try await TestAgent.start(
            Self.nobodyEntry,
            directory: directory,
            allowUnauthenticatedVerifiers: true
        )
        defer { allowed.removeDirectory() }
        let bundles = try await allowed.client.fetchX509Bundles()
        #expect(Array(bundles.bundles.keys) == ["spiffe://example.org"])
        _ = try await allowed.client.fetchJWTBundles()
        do {
            _ = try await allowed.client.fetchX509SVID()
            Issue.record("a caller without an entry received an SVID")
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied)
        }
        await allowed.stop()
    }

    @Test("a restart keeps the CA and the bundle")
    func restartKeepsAuthority() async throws {
        guard isRoot() else { return }
        let first = try await TestAgent.start(Self.rootEntry)
        defer { first.removeDirectory() }
        let before = try await first.client.fetchX509Bundles()
        await first.stop()
        let second = try await TestAgent.start(Self.rootEntry, directory: first.directory)
        let after = try await second.client.fetchX509Bundles()
        let svid = try await second.client.fetchX509SVID()
        await second.stop()
        #expect(after.bundles == before.bundles)
        #expect(svid.svids[0].bundle == before.bundles["spiffe://example.org"])
    }

    @Test("py-spiffe, an independent SPIFFE client, fetches and validates everything through the socket")
    func pySpiffeInterop() async throws {
        guard isRoot() else { return }
        let probe = try await LanyardCLI.runTool(["/usr/bin/env", "python3", "-c", "import spiffe"])
        guard probe.status == 0 else {
            print("skipped: py-spiffe is not installed (make deps installs it): \(probe.stderr)")
            return
        }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Fixtures/py_spiffe_client.py"
        ).path
        let result = try await LanyardCLI.runTool(["/usr/bin/env", "python3", script, agent.socketPath])
        await agent.stop()
        #expect(result.status == 0, "\(result.stderr)")
        let seen = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(seen?["x509_spiffe_id"] as? String == "spiffe://example.org/root-workload")
        #expect(seen?["x509_bundle_domains"] as? [String] == ["example.org"])
        #expect(seen?["jwt_spiffe_id"] as? String == "spiffe://example.org/root-workload")
        #expect(seen?["jwt_audience"] as? [String] == ["api"])
        #expect(seen?["validated_spiffe_id"] as? String == "spiffe://example.org/root-workload")
        #expect(seen?["jwt_key_count"] as? Int == 1)
    }

    @Test("config check and healthcheck exit codes")
    func commands() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: agent.directory)
        #expect(try await cli.run(["healthcheck", "--socket", agent.socketPath]).status == 0)
        #expect(try await cli.run(["config", "check", agent.configPath]).status == 0)
        await agent.stop()
        #expect(try await cli.run(["healthcheck", "--socket", agent.socketPath]).status == 1)
        try Data("trust_domain = \"Bad\"\nnope = 1\n".utf8).write(
            to: URL(fileURLWithPath: agent.directory + "/bad.toml")
        )
        let bad = try await cli.run(["config", "check", agent.directory + "/bad.toml"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("trust_domain: trust domain must be lowercase"))
        #expect(bad.stderr.contains("nope: unknown key"))
        #expect(try await cli.run(["api", "fetch", "jwt", "--socket", agent.socketPath]).status == 2)
        #expect(try await cli.run(["no-such-command"]).status == 2)
    }
}
