import Foundation
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Testing

/// Real cgroups (v1 and v2 style paths), real child processes moved into them, a real agent, and the fake kubelet
/// over real HTTPS with a bearer token.
@Suite("Kubernetes attestation against the fake kubelet", .serialized, .timeLimit(.minutes(5)))
struct K8sAttestationIntegrationTests {
    /// Where cgroups of each version are created on this machine, or nil (with the reason printed) when they cannot be.
    static func cgroupRoots() -> (v1: String, v2: String)? {
        guard getuid() == 0 else {
            print("skipped: the k8s integration tests need root to create cgroups and move processes into them")
            return nil
        }
        let v1 = "/sys/fs/cgroup/pids"
        let v2 =
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs")
            ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"
        for root in [v1, v2] {
            let probe = root + "/lanyard-probe-\(UUID().uuidString)"
            guard mkdir(probe, 0o755) == 0 else {
                print("skipped: cannot create a cgroup under \(root) (errno \(errno))")
                return nil
            }
            rmdir(probe)
        }
        return (v1, v2)
    }

    /// A pod's cgroup, as the kubelet's cgroup driver would name it for `version`.
    struct PodCgroup {
        let path: String
        let created: [String]

        init(root: String, version: Int, podUID: String, containerID: String) throws {
            let components: [String]
            if version == 1 {
                components = ["kubepods", "burstable", "pod\(podUID)", containerID]
            } else {
                let underscored = podUID.replacingOccurrences(of: "-", with: "_")
                components = [
                    "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod\(underscored).slice",
                    "cri-containerd-\(containerID).scope",
                ]
            }
            var path = root
            var created: [String] = []
            for (index, component) in components.enumerated() {
                path += "/" + component
                // The QoS levels above the pod are shared by tests running at once: created if missing, never
                // removed (removing one another test has just found would break that test's pod).
                if mkdir(path, 0o755) == 0, index >= components.count - 2 { created.append(path) }
            }
            self.path = path
            self.created = created
        }

        /// Removes the pod's and the container's cgroups (once no process is left in them).
        func remove() {
            for path in created.reversed() { rmdir(path) }
        }
    }

    static let entries = """
        [attestors.k8s]
        enabled = true
        kubelet_host = "127.0.0.1"
        kubelet_secure_port = PORT
        token_path = "DIR/token"
        kubelet_ca_path = "DIR/ca.crt"
        poll_retry_interval = "100ms"
        max_poll_attempts = 40

        [[entries]]
        spiffe_id = "spiffe://example.org/ns/shop/sa/api"
        selectors = ["k8s:ns:shop", "k8s:sa:api", "k8s:pod-label:app:api"]
        """

    /// The shop pod (entitled) and a pod of the same service account name in another namespace (not entitled).
    /// The pod UIDs of the shop pod (granted) and the staging pod (denied) that `pods` lists.
    static let shopPodUID = "2c48913c-b29f-11e7-9350-020968147796"
    static let stagingPodUID = "7f3e2a10-0000-4000-8000-00000000beef"

    static func pods(shopContainer: String, otherContainer: String, shopContainerListed: Bool = true) -> [FakePod] {
        [
            FakePod(
                name: "api-1",
                namespace: "shop",
                uid: shopPodUID,
                serviceAccount: "api",
                labels: ["app": "api"],
                containers: [
                    .init(
                        name: "api",
                        image: "shop/api:1",
                        containerID: shopContainerListed ? "containerd://\(shopContainer)" : ""
                    )
                ]
            ),
            FakePod(
                name: "api-1",
                namespace: "staging",
                uid: stagingPodUID,
                serviceAccount: "api",
                labels: ["app": "api"],
                containers: [.init(name: "api", image: "shop/api:1", containerID: "containerd://\(otherContainer)")]
            ),
        ]
    }

    struct Setup {
        let kubelet: FakeKubelet
        let agent: TestAgent
        let cli: LanyardCLI
        let logs: LogCapture

        func stop() async {
            await agent.stop()
            await kubelet.stop()
            agent.removeDirectory()
        }
    }

    /// `attestor` adds keys to `[attestors.k8s]`; `more` adds entries.
    static func start(
        pods: [FakePod],
        token: String = "fake-kubelet-token",
        caPEM: String? = nil,
        attestor: String = "",
        more: String = ""
    ) async throws -> Setup {
        let kubelet = try await FakeKubelet.start(pods: pods)
        let directory = TestAgent.makeDirectory()
        try Data(token.utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data((caPEM ?? kubelet.caPEM).utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        let logs = LogCapture()
        let body =
            entries.replacingOccurrences(of: "PORT", with: "\(kubelet.port)")
            .replacingOccurrences(of: "DIR", with: directory)
            .replacingOccurrences(of: "max_poll_attempts = 40", with: "max_poll_attempts = 40\n" + attestor) + "\n"
            + more
        let agent = try await TestAgent.start(body, directory: directory, logs: logs)
        return Setup(kubelet: kubelet, agent: agent, cli: try LanyardCLI(copyInto: directory), logs: logs)
    }

    /// Runs `lanyard api fetch x509` from inside `cgroup` (the shell moves itself in, then execs the client), off the
    /// cooperative pool so the in-process agent keeps its threads.
    static func fetch(
        from cgroup: PodCgroup,
        _ setup: Setup,
        clients: Int = 1
    ) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let fetch = "\(setup.cli.binary) api fetch x509 --socket \(setup.agent.socketPath)"
        let script =
            clients == 1
            ? "echo $$ > \(cgroup.path)/cgroup.procs && exec \(fetch)"
            : "echo $$ > \(cgroup.path)/cgroup.procs && pids=''; for i in $(seq \(clients)); do \(fetch) & pids=\"$pids $!\"; done; fails=0; for pid in $pids; do wait $pid || fails=$((fails+1)); done; exit $fails"
        return try await LanyardCLI.runTool(["/bin/sh", "-c", script])
    }

    @Test("the right pod gets its identity and another namespace is denied", arguments: [1, 2])
    func attests(cgroupVersion: Int) async throws {
        guard let roots = Self.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let other = FakePod.randomContainerID()
        let setup = try await Self.start(pods: Self.pods(shopContainer: shop, otherContainer: other))
        let root = cgroupVersion == 1 ? roots.v1 : roots.v2
        let shopCgroup = try PodCgroup(
            root: root,
            version: cgroupVersion,
            podUID: Self.shopPodUID,
            containerID: shop
        )
        let otherCgroup = try PodCgroup(
            root: root,
            version: cgroupVersion,
            podUID: Self.stagingPodUID,
            containerID: other
        )
        defer { shopCgroup.remove(); otherCgroup.remove() }

        let granted = try await Self.fetch(from: shopCgroup, setup)
        #expect(granted.status == 0, "\(granted.stderr)")
        #expect(granted.stdout.contains("spiffe://example.org/ns/shop/sa/api"))

        let denied = try await Self.fetch(from: otherCgroup, setup)
        #expect(denied.status == 1)
        #expect(
            denied.stderr.contains("permissionDenied") || denied.stderr.contains("no identity issued"),
            "\(denied.stderr)"
        )
        await setup.stop()
    }

    @Test("a wrong token or a wrong CA gives Unavailable and a clear log line")
    func kubeletRefusals() async throws {
        guard let roots = Self.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let impostor = try await FakeKubelet.start()
        for (token, ca, expected) in [
            ("stolen-token", nil, "refused the token"),
            ("fake-kubelet-token", impostor.caPEM, "TLS handshake failed"),
        ] as [(String, String?, String)] {
            let setup = try await Self.start(
                pods: Self.pods(shopContainer: shop, otherContainer: FakePod.randomContainerID()),
                token: token,
                caPEM: ca
            )
            let cgroup = try PodCgroup(
                root: roots.v2,
                version: 2,
                podUID: Self.shopPodUID,
                containerID: shop
            )
            let result = try await Self.fetch(from: cgroup, setup)
            cgroup.remove()
            #expect(result.status == 1)
            #expect(result.stderr.contains("unavailable"), "\(result.stderr)")
            let line = setup.logs.all.first { $0.contains("workload attestor failed") && $0.contains(expected) }
            #expect(line != nil, "\(setup.logs.all)")
            #expect(line?.contains("attestor.name=k8s") == true)
            #expect(!setup.logs.all.joined().contains("fake-kubelet-token"), "the token was logged")
            await setup.stop()
        }
        await impostor.stop()
    }

    @Test("a kubelet that fails, hangs, truncates or floods fails pod callers within the bound; others never wait")
    func kubeletFaults() async throws {
        guard let roots = Self.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let setup = try await Self.start(
            pods: Self.pods(shopContainer: shop, otherContainer: FakePod.randomContainerID()),
            attestor: "kubelet_request_timeout = \"3s\"",
            more: "[[entries]]\nspiffe_id = \"spiffe://example.org/host\"\nselectors = [\"unix:uid:0\"]"
        )
        let cgroup = try PodCgroup(
            root: roots.v2,
            version: 2,
            podUID: Self.shopPodUID,
            containerID: shop
        )
        defer { cgroup.remove() }
        for behaviour in [
            FakeKubelet.Behaviour.hang, .status(500), .truncated, .oversized(64 << 20), .slow(.seconds(5)),
        ] {
            setup.kubelet.setBehaviour(behaviour)
            let started = ContinuousClock.now
            async let pod = Self.fetch(from: cgroup, setup)
            // Meanwhile a process outside any pod (this one) is answered at once, kubelet or not.
            var slowest = Duration.zero
            for _ in 0..<10 {
                let callStarted = ContinuousClock.now
                let response = try await setup.agent.client.fetchX509SVID()
                slowest = max(slowest, ContinuousClock.now - callStarted)
                #expect(response.svids.first?.spiffeID == "spiffe://example.org/host")
                try await Task.sleep(for: .milliseconds(50))
            }
            let result = try await pod
            let took = ContinuousClock.now - started
            #expect(result.status == 1, "\(behaviour): \(result.stdout)")
            #expect(result.stderr.contains("unavailable"), "\(behaviour): \(result.stderr)")
            #expect(took < .seconds(12), "\(behaviour): the pod caller waited \(took)")
            // A host call blocked behind the kubelet would take the whole 3 s bound; on a loaded 2-core machine an
            // unblocked one can still take a second.
            #expect(slowest < .seconds(2), "\(behaviour): a host caller waited \(slowest)")
            print("kubelet \(behaviour): pod caller failed Unavailable after \(took); slowest host call \(slowest)")
        }
        setup.kubelet.setBehaviour(.normal)
        let recovered = try await Self.fetch(from: cgroup, setup)
        #expect(recovered.stdout.contains("spiffe://example.org/ns/shop/sa/api"), "\(recovered.stderr)")
        await setup.stop()
    }

    @Test("a container that appears after a few polls is attested once it does")
    func pollsUntilListed() async throws {
        guard let roots = Self.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let other = FakePod.randomContainerID()
        let setup = try await Self.start(
            pods: Self.pods(shopContainer: shop, otherContainer: other, shopContainerListed: false)
        )
        let cgroup = try PodCgroup(
            root: roots.v1,
            version: 1,
            podUID: Self.shopPodUID,
            containerID: shop
        )
        defer { cgroup.remove() }
        async let result = Self.fetch(from: cgroup, setup)
        while setup.kubelet.requestCount < 3 { try await Task.sleep(for: .milliseconds(20)) }
        setup.kubelet.setPods(Self.pods(shopContainer: shop, otherContainer: other))
        let fetched = try await result
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(fetched.stdout.contains("spiffe://example.org/ns/shop/sa/api"))
        #expect(setup.kubelet.requestCount >= 4)
        await setup.stop()
    }

    @Test("50 concurrent callers cause one kubelet request")
    func sharedRequest() async throws {
        guard let roots = Self.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let setup = try await Self.start(
            pods: Self.pods(shopContainer: shop, otherContainer: FakePod.randomContainerID())
        )
        // A slow kubelet keeps the one request in flight while the callers arrive.
        setup.kubelet.setBehaviour(.slow(.seconds(1)))
        let cgroup = try PodCgroup(
            root: roots.v2,
            version: 2,
            podUID: Self.shopPodUID,
            containerID: shop
        )
        defer { cgroup.remove() }
        let result = try await Self.fetch(from: cgroup, setup, clients: 50)
        #expect(result.status == 0, "\(result.status) of 50 callers failed: \(result.stderr)")
        #expect(result.stdout.components(separatedBy: "spiffe://example.org/ns/shop/sa/api").count - 1 >= 50)
        #expect(setup.kubelet.requestCount == 1)
        await setup.stop()
    }
}
