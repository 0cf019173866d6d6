import Foundation
import LanyardProto
import LanyardTestSupport
import Logging
import SPIFFE
import SPIFFECrypto
import Synchronization
import Testing

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

/// `lanyard helper` against a real agent on a real socket: the files, their modes, rotations under a concurrent
/// reader, JWT refreshes and federated bundles, with the helper in this process; exit codes and signals with the
/// built binary.
@Suite("lanyard helper against a real agent", .serialized, .timeLimit(.minutes(5)))
struct HelperTests {
    static let rootEntry = WorkloadAPIIntegrationTests.rootEntry

    func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the helper tests need root (an entry for uid 0)")
        return false
    }

    static func config(_ agent: TestAgent, certs: String, _ extra: String = "") throws -> HelperConfig {
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        return try HelperConfig.parse(
            """
            agent_address = "\(agent.socketPath)"
            cert_dir = "\(certs)"
            svid_file_name = "svid.pem"
            svid_key_file_name = "svid_key.pem"
            svid_bundle_file_name = "svid_bundle.pem"
            \(extra)
            """,
            path: agent.directory + "/helper.toml",
            environment: [:]
        )
    }

    /// The mode of the file a name resolves to (through the symlinks).
    static func mode(_ path: String) -> Int? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        let target = String(cString: resolved)
        return (try? FileManager.default.attributesOfItem(atPath: target))?[.posixPermissions] as? Int
    }

    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// The certificate and key on disk, checked to belong together; the leaf's serial.
    static func matchingSerial(_ certs: String) throws -> String {
        let chain = try Certificate.chain(pemEncoded: try String(contentsOfFile: certs + "/svid.pem", encoding: .utf8))
        let key = try PrivateKey(pemEncoded: try String(contentsOfFile: certs + "/svid_key.pem", encoding: .utf8))
        _ = try X509SVID(certificates: chain, privateKey: key)
        return chain[0].serialNumberHex
    }

    static func eventually(_ limit: Duration = .seconds(20), _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if (try? condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }

    @Test("files with the configured names and modes, re-applied after a chmod when the SVID rotates")
    func filesAndModes() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let certs = agent.directory + "/certs"
        let config = try Self.config(
            agent,
            certs: certs,
            """
            cert_file_mode = 0o640
            key_file_mode = "0600"
            jwt_bundle_file_name = "jwt_bundle.json"
            jwt_bundle_file_mode = 0o644
            """
        )
        let helper = try SVIDFileHelper(config: config, logger: Logger(label: "helper-test"))
        #expect(await helper.runOnce() == 0)
        let first = try Self.matchingSerial(certs)
        #expect(Self.mode(certs + "/svid.pem") == 0o640)
        #expect(Self.mode(certs + "/svid_key.pem") == 0o600)
        #expect(Self.mode(certs + "/svid_bundle.pem") == 0o640)
        #expect(Self.mode(certs + "/jwt_bundle.json") == 0o644)
        let bundle = try Certificate.chain(pemEncoded: try #require(Self.read(certs + "/svid_bundle.pem")))
        #expect(bundle.count == 1 && bundle[0].isCA)
        let jwks = try JSONSerialization.jsonObject(
            with: Data(try #require(Self.read(certs + "/jwt_bundle.json")).utf8)
        )
        #expect((jwks as? [String: Any])?.keys.sorted() == ["example.org"])

        // The daemon follows the stream; an operator's chmod does not survive the next write.
        chmod(certs + "/svid_key.pem", 0o644)
        let daemon = Task { await helper.run(handlingSignals: false) }
        let time = clock.autoAdvance()
        defer { time.cancel() }
        #expect(try await Self.eventually { try Self.matchingSerial(certs) != first })
        #expect(Self.mode(certs + "/svid_key.pem") == 0o600)
        time.cancel()
        daemon.cancel()
        #expect(await daemon.value == 0)
        await agent.stop()
    }

    @Test("across 50 rotations a concurrent reader never sees a partial file or a certificate without its key")
    func concurrentReaderAcrossRotations() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "10s", clock: clock)
        defer { agent.removeDirectory() }
        let certs = agent.directory + "/certs"
        let helper = try SVIDFileHelper(
            config: try Self.config(agent, certs: certs),
            logger: Logger(label: "helper-test")
        )
        #expect(await helper.runOnce() == 0)
        let daemon = Task { await helper.run(handlingSignals: false) }
        let done = Atomic(false)
        // However the test ends, the reader stops (it runs on a thread of its own, which cancellation cannot reach).
        defer { done.store(true, ordering: .relaxed) }
        // Reads key, certificate, key through the configured names, as a server reloading would.
        let reading = Task {
            await onThread { () -> (reads: Int, serials: Set<String>, broken: [String]) in
                var reads = 0
                var serials: Set<String> = []
                var broken: [String] = []
                while !done.load(ordering: .relaxed) {
                    guard let keyBefore = Self.read(certs + "/svid_key.pem"), let cert = Self.read(certs + "/svid.pem"),
                        let keyAfter = Self.read(certs + "/svid_key.pem")
                    else {
                        broken.append("a file could not be read")
                        continue
                    }
                    reads += 1
                    do {
                        let chain = try Certificate.chain(pemEncoded: cert)
                        let key = try PrivateKey(pemEncoded: keyBefore)
                        _ = try PrivateKey(pemEncoded: keyAfter)
                        serials.insert(chain[0].serialNumberHex)
                        if keyBefore == keyAfter { _ = try X509SVID(certificates: chain, privateKey: key) }
                    } catch {
                        broken.append("\(error)")
                    }
                    usleep(500)
                }
                return (reads, serials, broken)
            }
        }
        let time = clock.autoAdvance()
        defer { time.cancel() }
        var rotations = 0
        var last = try Self.matchingSerial(certs)
        while rotations < 50 {
            guard try await Self.eventually(.seconds(20), { try Self.matchingSerial(certs) != last }) else {
                Issue.record("no rotation after \(rotations)")
                break
            }
            last = try Self.matchingSerial(certs)
            rotations += 1
        }
        done.store(true, ordering: .relaxed)
        let (reads, serials, broken) = await reading.value
        time.cancel()
        daemon.cancel()
        _ = await daemon.value
        #expect(broken.isEmpty, "\(broken.prefix(3))")
        #expect(reads > 50)
        #expect(serials.count >= 10, "the reader saw \(serials.count) certificates over 50 rotations")
        let versions = try FileManager.default.contentsOfDirectory(atPath: certs).filter { $0.hasPrefix("..v-") }
        #expect(versions.count <= 2)
        await agent.stop()
    }

    @Test("JWT-SVIDs are refreshed before half their lifetime; federated bundles go to one file per trust domain")
    func jwtAndFederation() async throws {
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
            directory: directory,
            upstream: "[upstream.local]\njwt_svid_ttl = \"4s\""
        )
        defer { agent.removeDirectory() }
        let certs = directory + "/certs"
        let config = try Self.config(
            agent,
            certs: certs,
            """
            include_federated_domains = true
            jwt_svid_file_mode = 0o600
            [[jwt_svids]]
            jwt_audience = "payments"
            jwt_extra_audiences = ["audit"]
            jwt_svid_file_name = "payments.jwt"
            """
        )
        let helper = try SVIDFileHelper(config: config, logger: Logger(label: "helper-test"))
        let daemon = Task { await helper.run(handlingSignals: false) }
        #expect(try await Self.eventually { Self.read(certs + "/payments.jwt") != nil })
        let token = try #require(Self.read(certs + "/payments.jwt"))
        let validated = try await agent.client.validateJWTSVID(token: token, audience: "audit")
        #expect(validated.spiffeID == "spiffe://example.org/root-workload")
        #expect(Self.mode(certs + "/payments.jwt") == 0o600)
        // A 4 s token is fetched again after about 2 s.
        #expect(try await Self.eventually(.seconds(10)) { Self.read(certs + "/payments.jwt") != token })
        let partnerFile = try Certificate.chain(
            pemEncoded: try #require(Self.read(certs + "/federated/partner.org.pem"))
        )
        #expect(partnerFile.map(\.derEncoded) == [partner.certificate.derEncoded])
        let local = try Certificate.chain(pemEncoded: try #require(Self.read(certs + "/svid_bundle.pem")))
        #expect(local.count == 1 && local[0].derEncoded != partner.certificate.derEncoded)
        daemon.cancel()
        _ = await daemon.value

        // Merged on request.
        let merged = try Self.config(
            agent,
            certs: directory + "/merged",
            "include_federated_domains = true\nmerge_federated_bundles = true"
        )
        let mergedHelper = try SVIDFileHelper(config: merged, logger: Logger(label: "helper-test"))
        #expect(await mergedHelper.runOnce() == 0)
        let all = try Certificate.chain(pemEncoded: try #require(Self.read(directory + "/merged/svid_bundle.pem")))
        #expect(all.count == 2 && all.contains { $0.derEncoded == partner.certificate.derEncoded })
        #expect(!FileManager.default.fileExists(atPath: directory + "/merged/federated"))
        await agent.stop()
    }
}
