import Foundation
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Synchronization
import Testing

@testable import Attestation

/// The kubelet client against the fake kubelet over real HTTPS on loopback.
@Suite("Kubelet client and the shared pod-list fetch", .serialized, .timeLimit(.minutes(5)))
struct KubeletClientTests {
    /// A token and CA file for `kubelet`, in a fresh directory.
    static func files(
        for kubelet: FakeKubelet,
        token: String = "fake-kubelet-token"
    ) throws -> (token: String, ca: String) {
        let directory = FileManager.default.temporaryDirectory.path + "/kubelet-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(token.utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(kubelet.caPEM.utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        return (directory + "/token", directory + "/ca.crt")
    }

    static func client(
        _ kubelet: FakeKubelet,
        host: String = "127.0.0.1",
        token: String,
        ca: String,
        timeout: Duration = .seconds(10),
        maximumBytes: Int = 32 << 20
    ) -> KubeletClient {
        KubeletClient(
            config: .init(
                host: host,
                securePort: kubelet.usesTLS ? kubelet.port : 0,
                readOnlyPort: kubelet.usesTLS ? 0 : kubelet.port,
                tokenPath: token,
                caPath: ca,
                requestTimeout: timeout,
                maximumResponseBytes: maximumBytes
            )
        )
    }

    static func expectUnavailable(_ client: KubeletClient, containing fragment: String) async {
        do {
            _ = try await client.fetchPodList()
            Issue.record("fetch succeeded; expected a failure containing \(fragment)")
        } catch {
            #expect(error.code == .kubeletUnavailable)
            #expect(error.message.contains(fragment), "\(error.message)")
            #expect(!error.message.contains("fake-kubelet-token"), "a token leaked into an error message")
        }
    }

    @Test("fetches the pod list over HTTPS with the bearer token, by IP (chain only) and by name (hostname checked)")
    func fetches() async throws {
        let kubelet = try await FakeKubelet.start(pods: FakePod.generated(count: 110))
        defer { Task { await kubelet.stop() } }
        let (token, ca) = try Self.files(for: kubelet)
        let list = try await Self.client(kubelet, token: token, ca: ca).fetchPodList()
        #expect(list.pods.count == 110)
        let byName = try await Self.client(kubelet, host: "localhost", token: token, ca: ca).fetchPodList()
        #expect(byName.pods.count == 110)
        #expect(kubelet.requestCount == 2)
        #expect(kubelet.unauthorizedCount == 0)
    }

    @Test("the read-only port is plain HTTP without a token")
    func readOnlyPort() async throws {
        let kubelet = try await FakeKubelet.start(tls: false, token: nil, pods: FakePod.generated(count: 3))
        defer { Task { await kubelet.stop() } }
        let list = try await Self.client(kubelet, token: "/nonexistent", ca: "/nonexistent").fetchPodList()
        #expect(list.pods.count == 3)
    }

    @Test("a wrong token, a wrong CA, a missing token file are refused with clear messages")
    func refusals() async throws {
        let kubelet = try await FakeKubelet.start(pods: FakePod.generated(count: 1))
        let impostor = try await FakeKubelet.start()
        defer {
            Task {
                await kubelet.stop(); await impostor.stop()
            }
        }
        let (goodToken, goodCA) = try Self.files(for: kubelet)
        let (wrongToken, _) = try Self.files(for: kubelet, token: "stolen")
        let (_, wrongCA) = try Self.files(for: impostor)
        await Self.expectUnavailable(
            Self.client(kubelet, token: wrongToken, ca: goodCA),
            containing: "refused the token from \(wrongToken) (HTTP 401)"
        )
        await Self.expectUnavailable(
            Self.client(kubelet, token: goodToken, ca: wrongCA),
            containing: "TLS handshake failed"
        )
        await Self.expectUnavailable(
            Self.client(kubelet, token: "/nonexistent/token", ca: goodCA),
            containing: "cannot read the kubelet token"
        )
        // The certificate names localhost, not this host name.
        await Self.expectUnavailable(
            Self.client(kubelet, host: "127.0.0.1.nip.invalid", token: goodToken, ca: goodCA),
            containing: "cannot reach"
        )
        #expect(kubelet.unauthorizedCount == 1)
    }

    /// A client CA and a certificate and key it signed, written as PEM files into `directory`.
    static func clientCertificate(
        signedBy ca: CertificateAuthority,
        name: String,
        in directory: String
    ) throws -> (certificate: String, key: String) {
        let key = try PrivateKey(generating: .ecP256)
        let certificate = try CertificateTemplate(
            subject: [("CN", name)],
            notBefore: Date().addingTimeInterval(-60),
            notAfter: Date().addingTimeInterval(3600),
            keyUsage: [.digitalSignature],
            extendedKeyUsage: [.clientAuth]
        ).sign(subjectKey: key.publicKey, issuer: ca.certificate, issuerKey: ca.privateKey)
        let paths = (directory + "/\(name).crt", directory + "/\(name).key")
        try Data(certificate.pemEncoded.utf8).write(to: URL(fileURLWithPath: paths.0))
        try Data(try key.pemEncoded.utf8).write(to: URL(fileURLWithPath: paths.1))
        return paths
    }

    @Test("a kubelet that requires a client certificate: the configured pair is presented, re-read when rotated")
    func clientCertificates() async throws {
        let clientCA = try CertificateAuthority.makeRoot(
            trustDomain: TrustDomain("kubelet-clients.example"),
            keyType: .ecP256,
            ttl: .seconds(3600),
            now: Date()
        )
        let kubelet = try await FakeKubelet.start(
            token: nil,
            clientCA: clientCA.certificate,
            pods: FakePod.generated(count: 3)
        )
        defer { Task { await kubelet.stop() } }
        let (token, ca) = try Self.files(for: kubelet)
        let directory = (ca as NSString).deletingLastPathComponent
        let good = try Self.clientCertificate(signedBy: clientCA, name: "agent", in: directory)
        func client(_ pair: (certificate: String, key: String)?, anonymous: Bool = false) -> KubeletClient {
            KubeletClient(
                config: .init(
                    securePort: kubelet.port,
                    tokenPath: token,
                    caPath: ca,
                    requestTimeout: .seconds(5),
                    certificatePath: pair?.certificate,
                    privateKeyPath: pair?.key,
                    anonymous: anonymous
                )
            )
        }
        let withCertificate = client(good)
        #expect(try await withCertificate.fetchPodList().pods.count == 3)
        // No certificate, anonymous, or one from another CA: the handshake fails.
        await Self.expectUnavailable(client(nil), containing: "cannot reach the kubelet")
        await Self.expectUnavailable(client(nil, anonymous: true), containing: "cannot reach the kubelet")
        let stranger = try CertificateAuthority.makeRoot(
            trustDomain: TrustDomain("elsewhere.example"),
            keyType: .ecP256,
            ttl: .seconds(3600),
            now: Date()
        )
        let foreign = try Self.clientCertificate(signedBy: stranger, name: "foreign", in: directory)
        await Self.expectUnavailable(client(foreign), containing: "cannot reach the kubelet")
        // The pair is read on every request: replaced by a foreign one, then by a good one again.
        try FileManager.default.removeItem(atPath: good.certificate)
        try FileManager.default.removeItem(atPath: good.key)
        try FileManager.default.copyItem(atPath: foreign.certificate, toPath: good.certificate)
        try FileManager.default.copyItem(atPath: foreign.key, toPath: good.key)
        await Self.expectUnavailable(withCertificate, containing: "cannot reach the kubelet")
        _ = try Self.clientCertificate(signedBy: clientCA, name: "agent", in: directory)
        #expect(try await withCertificate.fetchPodList().pods.count == 3)
        // A missing or malformed pair is named.
        try Data("not pem".utf8).write(to: URL(fileURLWithPath: good.key))
        await Self.expectUnavailable(withCertificate, containing: "is not a PEM private key")
        try FileManager.default.removeItem(atPath: good.certificate)
        await Self.expectUnavailable(withCertificate, containing: "cannot read the kubelet client certificate")
    }

    @Test("use_anonymous_authentication sends no token")
    func anonymous() async throws {
        let kubelet = try await FakeKubelet.start(token: nil, pods: FakePod.generated(count: 2))
        defer { Task { await kubelet.stop() } }
        let (_, ca) = try Self.files(for: kubelet)
        let client = KubeletClient(
            config: .init(securePort: kubelet.port, tokenPath: "/nonexistent/token", caPath: ca, anonymous: true)
        )
        // The token file does not exist: only a client that does not read it succeeds.
        #expect(try await client.fetchPodList().pods.count == 2)
    }

    @Test("a rotated token and CA are picked up on the next request")
    func rotation() async throws {
        let first = try await FakeKubelet.start(token: "token-one", pods: FakePod.generated(count: 1))
        let (token, ca) = try Self.files(for: first, token: "token-one")
        let client = Self.client(first, token: token, ca: ca)
        #expect(try await client.fetchPodList().pods.count == 1)
        await first.stop()
        // A new kubelet on the same port with a new CA and a new token.
        let second = try await FakeKubelet.start(
            port: first.port,
            token: "token-two",
            pods: FakePod.generated(count: 2)
        )
        defer { Task { await second.stop() } }
        try Data("token-two\n".utf8).write(to: URL(fileURLWithPath: token))
        try Data(second.caPEM.utf8).write(to: URL(fileURLWithPath: ca))
        #expect(try await client.fetchPodList().pods.count == 2)
    }

    @Test("500, slow, hanging, truncated and oversized answers fail within their bounds")
    func faults() async throws {
        let kubelet = try await FakeKubelet.start(pods: FakePod.generated(count: 2))
        defer { Task { await kubelet.stop() } }
        let (token, ca) = try Self.files(for: kubelet)
        let client = Self.client(kubelet, token: token, ca: ca, timeout: .milliseconds(500), maximumBytes: 1 << 20)

        // A hang and an answer slower (3 s) than the deadline (0.5 s) fail with the deadline's message: had the
        // client waited, the slow answer would have succeeded.
        for behaviour in [FakeKubelet.Behaviour.hang, .slow(.seconds(3))] {
            kubelet.setBehaviour(behaviour)
            await Self.expectUnavailable(client, containing: "did not answer within")
        }

        // The rest must fail for their own reason, not the deadline: a roomier one keeps a loaded machine from
        // turning them into timeouts (a full run once saw the HTTP 500 take longer than 0.5 s).
        let patient = Self.client(kubelet, token: token, ca: ca, timeout: .seconds(10), maximumBytes: 1 << 20)
        kubelet.setBehaviour(.status(500))
        await Self.expectUnavailable(patient, containing: "answered HTTP 500")
        kubelet.setBehaviour(.truncated)
        await Self.expectUnavailable(patient, containing: "cut short")

        kubelet.setBehaviour(.oversized(2 << 20))
        await Self.expectUnavailable(patient, containing: "larger than 1048576 bytes")

        kubelet.setPodListJSON(Data("{\"items\":[{\"metadata\":".utf8))
        kubelet.setBehaviour(.normal)
        await Self.expectUnavailable(patient, containing: "not valid")

        kubelet.setPods(FakePod.generated(count: 2))
        #expect(try await client.fetchPodList().pods.count == 2)
    }

    @Test("50 concurrent callers share one request; a newer list is asked for at most once per interval")
    func sharedFetch() async throws {
        let calls = Atomic<Int>(0)
        // The spacing is kept on the fetcher's clock: a manual one, so the test reads it instead of timing it.
        let clock = ManualClock()
        let starts = Mutex<[Duration]>([])
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let gate = Mutex<AsyncStream<Void>.Iterator?>(release.makeAsyncIterator())
        let fetcher = PodListFetcher(maximumAge: .zero, minimumSpacing: .milliseconds(200), clock: clock) {
            let call = calls.add(1, ordering: .relaxed).newValue
            starts.withLock { $0.append(clock.uptime) }
            if call == 1, var iterator = gate.withLock({ $0.take() }) { _ = await iterator.next() }
            return PodList(pods: [])
        }
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 { group.addTask { try await fetcher.podList().version } }
            // Let every caller queue behind the first request before it completes.
            while await fetcher.requestCount == 0 { await Task.yield() }
            try await Task.sleep(for: .milliseconds(100))
            releaser.yield()
            var versions: [Int] = []
            for try await version in group { versions.append(version) }
            return versions
        }
        #expect(versions == Array(repeating: 1, count: 50))
        #expect(calls.load(ordering: .relaxed) == 1)

        // A newer list waits for the spacing: nothing is asked of the kubelet until the clock has moved 200 ms.
        let newerTask = Task { try await fetcher.podList(newerThan: 1) }
        try await clock.waitForSleepers()
        #expect(calls.load(ordering: .relaxed) == 1, "the newer list was asked for before the spacing")
        clock.advance(by: .milliseconds(200))
        let newer = try await newerTask.value
        #expect(newer.version == 2)
        #expect(calls.load(ordering: .relaxed) == 2)
        let times = starts.withLock { $0 }
        #expect(times[1] - times[0] >= .milliseconds(200))
    }

    @Test("a fresh list answers new callers without a request")
    func freshness() async throws {
        let calls = Atomic<Int>(0)
        let fetcher = PodListFetcher(maximumAge: .seconds(60), minimumSpacing: .zero) {
            calls.add(1, ordering: .relaxed)
            return PodList(pods: [])
        }
        for _ in 0..<20 { _ = try await fetcher.podList() }
        #expect(calls.load(ordering: .relaxed) == 1)
    }
}
