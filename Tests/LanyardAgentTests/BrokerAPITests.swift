import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import NIOCore
import NIOSSL
import SPIFFE
import SPIFFECrypto
import SwiftProtobuf
import Synchronization
import Testing

/// The SPIFFE Broker API over the agent's Broker Endpoint: real mutual TLS on a Unix socket, the test process as the
/// broker with the SVID the agent gave it, real child processes under another uid, and pods on the fake kubelet.
@Suite("SPIFFE Broker API", .serialized, .timeLimit(.minutes(5)))
struct BrokerAPITests {
    static let header: Metadata = ["broker.spiffe.io": "true"]
    static let shopPodUID = "5e2f9a10-1b2c-4d3e-8f40-0123456789ab"
    static let childUID: UInt32 = 40021

    struct Setup {
        let agent: TestAgent
        let kubelet: FakeKubelet
        let broker: WorkloadAPI_X509SVID
        let impostor: WorkloadAPI_X509SVID
        let logs: LogCapture
        /// The container ID of the shop pod's one container, as the kubelet lists it.
        let shopContainerID: String
        /// Set when the endpoint listens on 127.0.0.1 instead of its Unix socket.
        let tcpPort: Int?
        var socketPath: String { agent.directory + "/broker/broker.sock" }

        func stop() async {
            await agent.stop()
            await kubelet.stop()
            agent.removeDirectory()
        }
    }

    /// A free TCP port on 127.0.0.1 (bound to port 0, read, closed).
    static func freePort() throws -> Int {
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(probe, $0, length) == 0 && getsockname(probe, $0, &length) == 0
            }
        }
        guard bound else { throw TestAgentError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func start(tcpPort: Int? = nil, limits: String = "") async throws -> Setup {
        let shopContainerID = FakePod.randomContainerID()
        let kubelet = try await FakeKubelet.start(pods: [
            FakePod(
                name: "checkout-1",
                namespace: "shop",
                uid: shopPodUID,
                serviceAccount: "checkout",
                containers: [
                    .init(
                        name: "app",
                        image: "shop/checkout:1",
                        containerID: "containerd://\(shopContainerID)"
                    )
                ]
            )
        ])
        let directory = TestAgent.makeDirectory()
        try Data("fake-kubelet-token".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(kubelet.caPEM.utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            """
            [broker]
            \(tcpPort.map { "tcp_address = \"127.0.0.1:\($0)\"" } ?? "socket_path = \"\(directory)/broker/broker.sock\"")
            authorized_brokers = ["spiffe://example.org/broker"]
            \(limits)

            [attestors.k8s]
            enabled = true
            kubelet_host = "127.0.0.1"
            kubelet_secure_port = \(kubelet.port)
            token_path = "\(directory)/token"
            kubelet_ca_path = "\(directory)/ca.crt"

            [[entries]]
            spiffe_id = "spiffe://example.org/broker"
            selectors = ["unix:uid:0"]
            hint = "broker"

            [[entries]]
            spiffe_id = "spiffe://example.org/impostor"
            selectors = ["unix:uid:0"]
            hint = "impostor"

            [[entries]]
            spiffe_id = "spiffe://example.org/child"
            selectors = ["unix:uid:\(childUID)"]

            [[entries]]
            spiffe_id = "spiffe://example.org/ns/shop/sa/checkout"
            selectors = ["k8s:ns:shop", "k8s:sa:checkout"]
            """,
            directory: directory,
            logs: logs
        )
        let own = try await WorkloadAPIClient(socketPath: agent.socketPath).fetchX509SVID().svids
        let broker = try #require(own.first { $0.spiffeID == "spiffe://example.org/broker" })
        let impostor = try #require(own.first { $0.spiffeID == "spiffe://example.org/impostor" })
        return Setup(
            agent: agent,
            kubelet: kubelet,
            broker: broker,
            impostor: impostor,
            logs: logs,
            shopContainerID: shopContainerID,
            tcpPort: tcpPort
        )
    }

    /// A Broker API client presenting `svid` (chain and key) and checking the endpoint's chain against the trust
    /// domain's bundle and its SPIFFE ID.
    static func withBroker<Result: Sendable>(
        _ setup: Setup,
        presenting chain: [Certificate],
        key: PrivateKey,
        _ body: @Sendable (Spiffe_Broker_API.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        try await withBroker(
            at: setup.tcpPort.map { .ipv4(address: "127.0.0.1", port: $0) as any ResolvableTarget }
                ?? .unixDomainSocket(path: setup.socketPath),
            anchors: try Certificate.chain(derConcatenated: setup.broker.bundle),
            endpointID: "spiffe://example.org/lanyard/broker-endpoint",
            presenting: chain,
            key: key,
            body
        )
    }

    /// A Broker API client at `target` presenting `chain` and `key`; the endpoint must present an X509-SVID for
    /// `endpointID` that verifies against `anchors` (its leaf is passed to `onEndpoint`).
    static func withBroker<Result: Sendable>(
        at target: any ResolvableTarget,
        anchors: [Certificate],
        endpointID: String,
        presenting chain: [Certificate],
        key: PrivateKey,
        onEndpoint: @escaping @Sendable (Certificate) -> Void = { _ in },
        _ body: @Sendable (Spiffe_Broker_API.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let keyPEM = Array(try key.pemEncoded.utf8)
        let transport = try HTTP2ClientTransport.Posix(
            target: target,
            transportSecurity: .tls { tls in
                tls.certificateChain = chain.map { .bytes(Array($0.derEncoded), format: .der) }
                tls.privateKey = .bytes(keyPEM, format: .pem)
                tls.serverCertificateVerification = .noHostnameVerification
                tls.customVerificationCallback = { certificates, promise in
                    do {
                        let presented = try certificates.map { try Certificate(derEncoded: Data($0.toDERBytes())) }
                        let id = try X509SVIDVerifier.verify(
                            presented,
                            bundle: X509Bundle(trustDomain: try TrustDomain("example.org"), authorities: anchors),
                            at: Date()
                        )
                        guard id.description == endpointID else {
                            promise.succeed(.failed)
                            return
                        }
                        onEndpoint(presented[0])
                        promise.succeed(
                            .certificateVerified(VerificationMetadata(ValidatedCertificateChain(certificates)))
                        )
                    } catch {
                        promise.succeed(.failed)
                    }
                }
            }
        )
        return try await withGRPCClient(transport: transport) { client in
            try await body(Spiffe_Broker_API.Client(wrapping: client))
        }
    }

    static func withBroker<Result: Sendable>(
        _ setup: Setup,
        as svid: WorkloadAPI_X509SVID? = nil,
        _ body: @Sendable (Spiffe_Broker_API.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let svid = svid ?? setup.broker
        return try await withBroker(
            setup,
            presenting: try Certificate.chain(derConcatenated: svid.x509Svid),
            key: try PrivateKey(pkcs8DER: svid.x509SvidKey),
            body
        )
    }

    static func pid(_ pid: Int32) -> Spiffe_Broker_WorkloadReference {
        .with {
            $0.reference = try! Google_Protobuf_Any(message: Spiffe_Broker_WorkloadPIDReference.with { $0.pid = pid })
        }
    }

    static func pod(uid: String = "", namespace: String = "", name: String = "") -> Spiffe_Broker_WorkloadReference {
        .with { reference in
            reference.reference = try! Google_Protobuf_Any(
                message: Spiffe_Broker_KubernetesObjectReference.with { object in
                    object.type = .with {
                        $0.plural = "pods"
                        $0.group = "core"
                    }
                    if !namespace.isEmpty || !name.isEmpty {
                        object.key = .with {
                            $0.namespace = namespace
                            $0.name = name
                        }
                    }
                    object.uid = uid
                }
            )
        }
    }

    /// The first X509-SVID message for `reference`, or the call's status.
    static func firstX509(
        _ api: Spiffe_Broker_API.Client<HTTP2ClientTransport.Posix>,
        _ reference: Spiffe_Broker_WorkloadReference,
        metadata: Metadata = header
    ) async throws -> Spiffe_Broker_SubscribeToX509SVIDResponse {
        try await api.subscribeToX509SVID(.with { $0.reference = reference }, metadata: metadata) { response in
            for try await message in response.messages { return message }
            throw RPCError(code: .unknown, message: "the stream ended without a message")
        }
    }

    /// The status `body` fails with (nil when it succeeds), and the ErrorInfo reason if the server sent one.
    static func failure(_ body: () async throws -> Void) async -> (RPCError.Code?, String?) {
        do {
            try await body()
            return (nil, nil)
        } catch let error as RPCError {
            let status = try? error.unpackGoogleRPCStatus()
            let reason = status?.details.compactMap { $0.errorInfo?.reason }.first
            return (error.code, reason ?? error.message)
        } catch {
            return (.unknown, "\(error)")
        }
    }

    @Test(
        "an authorized broker gets a process's X.509 and JWT SVIDs by PID, a pod's by UID and by its process; streams end"
    )
    func brokerFetches() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test runs a child under another uid")
            return
        }
        let setup = try await Self.start()
        let child = try await ChildProcess.start([
            "/usr/bin/setpriv", "--reuid", "\(Self.childUID)", "--regid", "\(Self.childUID)", "--clear-groups",
            "/bin/sleep", "120",
        ])
        #expect(
            try await HelperTests.eventually {
                HelperTests.read("/proc/\(child.pid)/comm") == "sleep\n"
                    && HelperTests.read("/proc/\(child.pid)/status")?.contains("Uid:\t\(Self.childUID)") == true
            }
        )
        let childPID = child.pid
        try await Self.withBroker(setup) { api in
            let x509 = try await Self.firstX509(api, Self.pid(childPID))
            #expect(x509.svids.map(\.spiffeID) == ["spiffe://example.org/child"])
            let leaf = try Certificate.chain(derConcatenated: x509.svids[0].x509Svid)[0]
            #expect(leaf.spiffeID?.description == "spiffe://example.org/child")

            let jwt = try await api.fetchJWTSVID(
                .with {
                    $0.reference = Self.pid(childPID)
                    $0.audience = ["db"]
                },
                metadata: Self.header
            )
            #expect(jwt.svids.map(\.spiffeID) == ["spiffe://example.org/child"] && !jwt.svids[0].svid.isEmpty)

            let bundles = try await api.subscribeToJWTBundles(
                .with { $0.reference = Self.pid(childPID) },
                metadata: Self.header
            ) { response in
                for try await message in response.messages { return message }
                throw RPCError(code: .unknown, message: "no bundles")
            }
            #expect(bundles.bundles.keys.sorted() == ["spiffe://example.org"])

            // The pod by UID, by namespace/name, and by both.
            for reference in [
                Self.pod(uid: Self.shopPodUID), Self.pod(namespace: "shop", name: "checkout-1"),
                Self.pod(uid: Self.shopPodUID, namespace: "shop", name: "checkout-1"),
            ] {
                let pod = try await Self.firstX509(api, reference)
                #expect(pod.svids.map(\.spiffeID) == ["spiffe://example.org/ns/shop/sa/checkout"])
            }

            // The pod's own process by PID, in its container's real cgroup (moved there as root, then running
            // under uid 40022, which no entry names): the k8s attestor finds the same pod.
            if let roots = K8sAttestationIntegrationTests.cgroupRoots() {
                let cgroup = try K8sAttestationIntegrationTests.PodCgroup(
                    root: roots.v2,
                    version: 2,
                    podUID: Self.shopPodUID,
                    containerID: setup.shopContainerID
                )
                let inPod = try await ChildProcess.start([
                    "/bin/sh", "-c",
                    "echo $$ > \(cgroup.path)/cgroup.procs && exec /usr/bin/setpriv --reuid 40022 --regid 40022"
                        + " --clear-groups /bin/sleep 120",
                ])
                #expect(
                    try await HelperTests.eventually {
                        HelperTests.read("/proc/\(inPod.pid)/comm") == "sleep\n"
                            && HelperTests.read("/proc/\(inPod.pid)/cgroup")?.contains(setup.shopContainerID) == true
                    }
                )
                let viaPID = try await Self.firstX509(api, Self.pid(inPod.pid))
                #expect(viaPID.svids.map(\.spiffeID) == ["spiffe://example.org/ns/shop/sa/checkout"])
                inPod.stop()
                _ = await inPod.waitUntilExit()
                cgroup.remove()
            }

            // A stream for the child ends with NOT_FOUND once it exits.
            let ended = await Self.failure {
                try await api.subscribeToX509SVID(.with { $0.reference = Self.pid(childPID) }, metadata: Self.header) {
                    response in
                    var count = 0
                    for try await _ in response.messages {
                        count += 1
                        if count == 1 { child.stop() }
                    }
                }
            }
            #expect(ended.0 == .notFound && ended.1 == "WORKLOAD_NOT_FOUND", "\(ended)")
        }
        await setup.stop()
    }

    @Test(
        "refusals carry the standard's codes: header, broker identity, references to nothing, forged pods, unknown types"
    )
    func refusals() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test's entries are for uid 0")
            return
        }
        let setup = try await Self.start()
        let exited = try await ChildProcess.start(["/bin/true"])
        _ = await exited.waitUntilExit()
        let gonePID = exited.pid
        try await Self.withBroker(setup) { api in
            let gone = await Self.failure { _ = try await Self.firstX509(api, Self.pid(gonePID)) }
            #expect(gone.0 == .notFound && gone.1 == "WORKLOAD_NOT_FOUND", "\(gone)")
            let headerless = await Self.failure { _ = try await Self.firstX509(api, Self.pid(gonePID), metadata: [:]) }
            #expect(headerless.0 == .invalidArgument, "\(headerless)")
            let negative = await Self.failure { _ = try await Self.firstX509(api, Self.pid(-4)) }
            #expect(negative.0 == .invalidArgument && negative.1 == "WORKLOAD_REFERENCE_INVALID", "\(negative)")
            let empty = await Self.failure { _ = try await Self.firstX509(api, Spiffe_Broker_WorkloadReference()) }
            #expect(empty.0 == .invalidArgument, "\(empty)")
            let unknownType = Spiffe_Broker_WorkloadReference.with {
                $0.reference = try! Google_Protobuf_Any(
                    message: Spiffe_Broker_KubernetesObjectKey.with { $0.name = "x" }
                )
            }
            let unknown = await Self.failure { _ = try await Self.firstX509(api, unknownType) }
            #expect(unknown.0 == .invalidArgument && unknown.1 == "WORKLOAD_REFERENCE_INVALID", "\(unknown)")
            let notOnNode = await Self.failure {
                _ = try await Self.firstX509(api, Self.pod(uid: "00000000-0000-4000-8000-000000000000"))
            }
            #expect(notOnNode.0 == .notFound, "\(notOnNode)")
            let forged = await Self.failure {
                _ = try await Self.firstX509(
                    api,
                    Self.pod(uid: "00000000-0000-4000-8000-000000000000", namespace: "shop", name: "checkout-1")
                )
            }
            #expect(forged.0 == .notFound && forged.1 == "WORKLOAD_NOT_FOUND", "\(forged)")
            // The broker itself has identities, but an unknown process is not entitled: uid 65534 has no entry.
            let stranger = try await ChildProcess.start([
                "/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sleep", "30",
            ])
            defer { stranger.stop() }
            _ = try await HelperTests.eventually { HelperTests.read("/proc/\(stranger.pid)/comm") == "sleep\n" }
            let unentitled = await Self.failure { _ = try await Self.firstX509(api, Self.pid(stranger.pid)) }
            #expect(unentitled.0 == .permissionDenied && unentitled.1 == "WORKLOAD_NOT_ENTITLED", "\(unentitled)")
        }
        // An SVID of the trust domain that is not an authorized broker: PERMISSION_DENIED.
        try await Self.withBroker(setup, as: setup.impostor) { api in
            let refused = await Self.failure { _ = try await Self.firstX509(api, Self.pid(getpid())) }
            #expect(refused.0 == .permissionDenied, "\(refused)")
        }
        // The authorized broker's SPIFFE ID in a certificate from a CA the trust domain does not have: no handshake.
        let foreignCA = try CertificateAuthority.makeRoot(
            trustDomain: try TrustDomain("example.org"),
            keyType: .ecP256,
            ttl: .seconds(3600),
            now: Date()
        )
        let forgedKey = try PrivateKey(generating: .ecP256)
        let forgedChain = try foreignCA.issueX509SVID(
            csr: try CertificateSigningRequest(
                privateKey: forgedKey,
                spiffeID: try SPIFFEID("spiffe://example.org/broker"),
                dnsNames: []
            ),
            spiffeID: try SPIFFEID("spiffe://example.org/broker"),
            ttl: .seconds(600),
            now: Date()
        )
        let forged = await Self.failure {
            try await Self.withBroker(setup, presenting: forgedChain, key: forgedKey) { api in
                _ = try await Self.firstX509(api, Self.pid(getpid()))
            }
        }
        #expect(
            forged.0 != nil && forged.0 != .permissionDenied,
            "a forged broker SVID must not complete the handshake: \(forged)"
        )
        await setup.stop()
    }

    @Test("over TCP: the same mutual TLS, pods served, PID references refused (they name this node's processes only)")
    func tcpEndpoint() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test's entries are for uid 0")
            return
        }
        let setup = try await Self.start(tcpPort: try Self.freePort())
        try await Self.withBroker(setup) { api in
            let pod = try await Self.firstX509(api, Self.pod(uid: Self.shopPodUID))
            #expect(pod.svids.map(\.spiffeID) == ["spiffe://example.org/ns/shop/sa/checkout"])
            let local = await Self.failure { _ = try await Self.firstX509(api, Self.pid(getpid())) }
            #expect(local.0 == .invalidArgument && local.1 == "WORKLOAD_REFERENCE_INVALID", "\(local)")
        }
        await setup.stop()
    }

    @Test("beyond max_connections a connection is closed as it is accepted; brokers are served once holders leave")
    func connectionLimit() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test's entries are for uid 0")
            return
        }
        let setup = try await Self.start(limits: "max_connections = 8")
        let socketPath = setup.socketPath
        // Eight connections held without a TLS handshake, then a ninth: closed as it is accepted, for the limit (the
        // log says so; the eight are closed only at their handshake deadline, 10 s after they connected).
        let (held, extraClosed, seconds) = try await offPool {
            var held: [RawSocketClient] = []
            for _ in 0..<8 {
                if let client = RawSocketClient(path: socketPath) { held.append(client) }
            }
            let started = Date()
            guard let extra = RawSocketClient(path: socketPath) else { return (held, false, 0.0) }
            let closed = extra.closedByPeer(within: 60)
            let seconds = -started.timeIntervalSinceNow
            extra.close()
            return (held, closed, seconds)
        }
        print("broker connection 9 of 8 closed after \(seconds) s")
        #expect(held.count == 8)
        #expect(extraClosed, "connection 9 was not closed")
        #expect(setup.logs.all.filter { $0.contains("holds its connection limit") }.count == 1)
        for client in held { client.close() }
        // The slots come back as the holders leave.
        let served = try await withDeadline(.seconds(60), "a broker call after the limit") {
            try await Self.withBroker(setup) { api in
                try await Self.firstX509(api, Self.pod(uid: Self.shopPodUID)).svids.map(\.spiffeID)
            }
        }
        #expect(served == ["spiffe://example.org/ns/shop/sa/checkout"])
        await setup.stop()
    }

    @Test("a connection that never finishes its handshake is closed at the deadline, a silent one after it when idle")
    func handshakeDeadline() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test's entries are for uid 0")
            return
        }
        let setup = try await Self.start(limits: "connection_idle_timeout = \"3s\"")
        let socketPath = setup.socketPath
        let (closed, seconds) = try await offPool {
            guard let client = RawSocketClient(path: socketPath) else { return (false, 0.0) }
            defer { client.close() }
            let started = Date()
            return (client.closedByPeer(within: 60), -started.timeIntervalSinceNow)
        }
        // The deadline is 10 s, or the idle timeout when shorter: 3 s here.
        print("a broker connection without a handshake was closed after \(seconds) s (deadline 3 s)")
        #expect(closed, "the connection without a handshake was still open after 60 s")
        #expect(seconds >= 2.5, "closed after \(seconds) s: before the deadline, so not for its missing handshake")

        // A broker that completes the handshake (openssl s_client with the authorized SVID) and then sends nothing
        // is closed by the idle timeout (gRPC's own idle timer never starts for it: it opened no call).
        let directory = setup.agent.directory
        let chain = try Certificate.chain(derConcatenated: setup.broker.x509Svid)
        try chain.map(\.pemEncoded).joined().write(toFile: directory + "/broker.pem", atomically: true, encoding: .utf8)
        try writePrivateFile(
            try PrivateKey(pkcs8DER: setup.broker.x509SvidKey).pemEncoded,
            to: directory + "/broker.key"
        )
        let logPath = directory + "/s_client.log"
        let client = try await ChildProcess.start([
            "/bin/sh", "-c",
            "exec /usr/bin/openssl s_client -unix \(socketPath) -cert \(directory)/broker.pem -key \(directory)/broker.key"
                + " -alpn h2 -ign_eof < /dev/null > \(logPath) 2>&1",
        ])
        let started = Date()
        let exited = await client.waitUntilExit(timeout: .seconds(60))
        let silentFor = -started.timeIntervalSinceNow
        print("a silent broker connection after its handshake was closed after \(silentFor) s (idle timeout 3 s)")
        // What the endpoint sent is in the log too (gRPC's GOAWAY, binary): decoded leniently.
        let log = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
        #expect(
            log.contains("ALPN protocol: h2"),
            "the handshake did not complete (exit \(String(describing: exited))): \(log.suffix(600))"
        )
        #expect(exited != nil, "a silent connection after its handshake was still open after 60 s")
        #expect(silentFor >= 2.5, "closed after \(silentFor) s: before the idle timeout")
        if exited == nil { client.stop() }
        await setup.stop()
    }

    @Test("fleet mode: the endpoint presents the agent SVID from SPIRE Server, a new one once it is renewed")
    func fleetMode() async throws {
        guard getuid() == 0 else {
            print("skipped: the broker test runs a child under another uid")
            return
        }
        // An 8 s agent SVID: renewed at half-life while the test runs.
        let server = try await SPIREUpstreamIntegrationTests.startServer(agentSVIDTTL: .seconds(8))
        try server.addEntry(spiffeID: "spiffe://example.org/broker", selectors: ["unix:uid:0"])
        try server.addEntry(spiffeID: "spiffe://example.org/child", selectors: ["unix:uid:\(Self.childUID)"])
        let directory = TestAgent.makeDirectory()
        let socketPath = directory + "/broker/broker.sock"
        let agent = try await TestAgent.start(
            """
            [broker]
            socket_path = "\(socketPath)"
            authorized_brokers = ["spiffe://example.org/broker"]
            """,
            directory: directory,
            upstream: try SPIREUpstreamIntegrationTests.upstream(server, directory: directory)
        )
        let own = try #require(try await agent.client.fetchX509SVID().svids.first)
        #expect(own.spiffeID == "spiffe://example.org/broker")
        let agentID = try #require(server.agentIDs.first).description
        let child = try await ChildProcess.start([
            "/usr/bin/setpriv", "--reuid", "\(Self.childUID)", "--regid", "\(Self.childUID)", "--clear-groups",
            "/bin/sleep", "120",
        ])
        defer { child.stop() }
        #expect(
            try await HelperTests.eventually {
                HelperTests.read("/proc/\(child.pid)/status")?.contains("Uid:\t\(Self.childUID)") == true
            }
        )
        let childPID = child.pid
        let seen = Mutex<[Certificate]>([])
        let connect = { @Sendable () async throws -> [String] in
            try await Self.withBroker(
                at: .unixDomainSocket(path: socketPath),
                anchors: try Certificate.chain(derConcatenated: own.bundle),
                endpointID: agentID,
                presenting: try Certificate.chain(derConcatenated: own.x509Svid),
                key: try PrivateKey(pkcs8DER: own.x509SvidKey),
                onEndpoint: { leaf in seen.withLock { $0.append(leaf) } }
            ) { api in try await Self.firstX509(api, Self.pid(childPID)).svids.map(\.spiffeID) }
        }
        // The endpoint's certificate is the agent SVID (verified against SPIRE's bundle for the agent's ID).
        #expect(try await connect() == ["spiffe://example.org/child"])
        let first = try #require(seen.withLock { $0.first })
        #expect(first.spiffeID?.description == agentID)
        // Once the agent has renewed its SVID, a new connection sees the renewed one.
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually(.seconds(30)) {
                server.count("RenewAgent") >= 1
            },
            "the agent SVID was not renewed"
        )
        var renewed = false
        for _ in 0..<60 where !renewed {
            #expect(try await connect() == ["spiffe://example.org/child"])
            renewed = seen.withLock { $0.last?.serialNumber != first.serialNumber }
            if !renewed { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(renewed, "the endpoint still presents the agent SVID from before the renewal")
        #expect(seen.withLock { $0.last?.spiffeID?.description } == agentID)
        await agent.stop()
        agent.removeDirectory()
        await server.stop()
    }
}
