import Foundation
import GRPCCore
import IdentityCache
import LanyardProto
import LanyardTestSupport
import SPIFFE
import Testing

@testable import LanyardAgent

/// The admin endpoint against real agents: `status` in both modes, `entries`, `explain` for live processes under
/// other uids, `log-level`, and the kernel-checked authorization every call goes through.
@Suite("Admin endpoint: status, explain, entries, log level", .serialized, .timeLimit(.minutes(5)))
struct AdminEndpointTests {
    static let entries = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:0"]

        [[entries]]
        spiffe_id = "spiffe://example.org/worker"
        selectors = ["unix:uid:40011"]
        hint = "worker"

        [[entries]]
        spiffe_id = "spiffe://example.org/worker-admin"
        selectors = ["unix:uid:40011", "unix:gid:777"]
        """

    static func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the admin tests run callers under other uids (setpriv) and need root")
        return false
    }

    /// A process under `uid` that lives until stopped.
    static func sleeper(uid: UInt32) async throws -> ChildProcess {
        try await ChildProcess.start([
            "/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups", "/bin/sleep", "60",
        ])
    }

    @Test("status in standalone mode reports the cache, the CA and readiness as the agent holds them")
    func standaloneStatus() async throws {
        guard Self.isRoot() else { return }
        let agent = try await TestAgent.start(Self.entries)
        defer { agent.removeDirectory() }
        let admin = TestAdminClient(socketPath: agent.adminSocketPath)
        // Asked while one FetchX509SVID stream is open, after its first message.
        let status = try await agent.client.withClient { api in
            try await api.fetchX509SVID(.init(), metadata: ["workload.spiffe.io": "true"]) { response in
                for try await _ in response.messages { return try await admin.status() }
                throw TestAgentError("the stream ended without a message")
            }
        }
        await agent.stop()
        #expect(status.streams == 1 && status.openCallsByMethod == ["FetchX509SVID": 1], "\(status.openCallsByMethod)")
        #expect(status.connections == 1 && status.callers.map(\.uid) == [0], "\(status.callers)")
        #expect(status.apiVersion == "v1")
        #expect(status.mode == "standalone" && status.trustDomain == "example.org")
        #expect(status.entries == 3 && status.svidsCached == 3 && status.svidCacheLimit == nil)
        #expect(status.ready, "\(status.readiness)")
        #expect(status.logLevel == "warning")
        #expect(status.upstream.kind == "local" && status.upstream.lastSuccessfulSync != nil)
        #expect(status.upstream.lastError == nil && status.upstream.failingSince == nil)
        let generations = try #require(status.caGenerations)
        #expect(generations.count >= 1 && generations.filter(\.signing).count == 1)
        #expect(status.earliestSvidExpiry.map { $0 > Date() } == true)
    }

    @Test("status in fleet mode names the server and the agent SVID, and the last error once the server is gone")
    func fleetStatus() async throws {
        guard Self.isRoot() else { return }
        let server = try await SPIREUpstreamIntegrationTests.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try SPIREUpstreamIntegrationTests.upstream(server, directory: directory)
        )
        let client = TestAdminClient(socketPath: agent.adminSocketPath)
        let before = try await client.status()
        #expect(before.mode == "fleet" && before.upstream.kind == "spire")
        #expect(before.upstream.serverAddress == "127.0.0.1:\(server.port)")
        #expect(before.upstream.agentId == server.agentIDs.first?.description)
        #expect(before.upstream.agentSvidExpiry.map { $0 > Date() } == true)
        // Healthy now; a sync that failed once while the loaded machine started everything stays the last error
        // (it is history, not state), so only "not failing" is asserted.
        #expect(before.upstream.failingSince == nil, "failing: \(before.upstream.lastError ?? "")")
        #expect(before.caGenerations == nil)
        await server.stop()
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                try await client.status().upstream.failingSince != nil
            }
        )
        let after = try await client.status()
        #expect(after.upstream.lastError?.contains("127.0.0.1:\(server.port)") == true, "\(after.upstream)")
        #expect(after.ready, "valid SVIDs keep the agent ready through an outage: \(after.readiness)")
        let lastSuccess = try #require(after.upstream.lastSuccessfulSync)
        #expect(lastSuccess >= (before.upstream.lastSuccessfulSync ?? .distantFuture))
        // Times are whole seconds in the JSON: the failure began at or after the last success.
        #expect(try #require(after.upstream.failingSince) >= lastSuccess, "\(after.upstream)")
        await agent.stop()
    }

    @Test("explain: a matching caller, one missing a selector (named), a hypothetical uid, and a process that exited")
    func explain() async throws {
        guard Self.isRoot() else { return }
        let agent = try await TestAgent.start(Self.entries)
        defer { agent.removeDirectory() }
        let client = TestAdminClient(socketPath: agent.adminSocketPath)
        let worker = try await Self.sleeper(uid: 40011)
        // setpriv execs sleep in the same process: wait until the pid runs as the worker.
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                (try? await client.explain(pid: worker.pid))?.caller.uid == 40011
            }
        )
        let report = try await client.explain(pid: worker.pid)
        #expect(report.caller == .init(pid: worker.pid, uid: 40011, gid: 40011, hypothetical: false))
        #expect(report.attestors.map(\.name) == ["unix"] && report.attestors[0].error == nil)
        #expect(report.selectors.contains("unix:uid:40011") && report.selectors.contains("unix:gid:40011"))
        #expect(report.identities.map(\.spiffeId) == ["spiffe://example.org/worker"])
        #expect(report.identities.first?.svidSerial != nil, "the SVID it would receive is held")
        let missing = try #require(report.entries.first { $0.spiffeId == "spiffe://example.org/worker-admin" })
        #expect(!missing.matched && missing.missingSelectors == ["unix:gid:777"])
        let root = try #require(report.entries.first { $0.spiffeId == "spiffe://example.org/root-workload" })
        #expect(!root.matched && root.missingSelectors == ["unix:uid:0"])
        #expect(report.verdict == "would receive 1 identity")
        #expect(report.sdsResources.contains("spiffe://example.org/worker") && report.sdsResources.contains("ROOTCA"))

        // Nobody matches a stranger; the verdict names the closest entry and what it lacks.
        let stranger = try await client.explain(uid: 40012, gid: 40012)
        #expect(stranger.caller.hypothetical && stranger.identities.isEmpty)
        #expect(stranger.verdict.hasPrefix("no entry matches: closest is spiffe://example.org/"), "\(stranger.verdict)")
        #expect(Set(stranger.selectors) == ["unix:uid:40012", "unix:gid:40012"])

        // A process that exited is reported as such.
        worker.stop()
        _ = await worker.waitUntilExit()
        await #expect {
            _ = try await client.explain(pid: worker.pid)
        } throws: { error in
            (error as? AdminClient.Failure)?.code == "NOT_FOUND"
        }
        await agent.stop()
    }

    @Test("every admin call from a uid not in authorized_uids is PERMISSION_DENIED, even on a world-writable socket")
    func authorization() async throws {
        guard Self.isRoot() else { return }
        let agent = try await TestAgent.start(Self.entries, admin: "authorized_uids = [0, 40013]")
        defer { agent.removeDirectory() }
        let mode = try #require(
            FileManager.default.attributesOfItem(atPath: agent.adminSocketPath)[.posixPermissions] as? NSNumber
        )
        #expect(mode.intValue & 0o777 == 0o600, "admin socket mode \(String(mode.intValue, radix: 8))")
        // Opened to everyone, as a careless chmod would: the kernel's credentials still decide.
        chmod(agent.adminSocketPath, 0o666)
        chmod(agent.directory + "/private", 0o755)
        let cli = try LanyardCLI(copyInto: agent.directory)
        let socket = ["--admin-socket", agent.adminSocketPath]
        let calls: [[String]] = [
            ["status"] + socket, ["entries"] + socket, ["explain", "--pid", "1"] + socket,
            ["explain", "--uid", "0"] + socket, ["log-level"] + socket, ["log-level", "trace"] + socket,
        ]
        for call in calls {
            let denied = try await cli.run(call, uid: 65534, gid: 65534)
            #expect(denied.status == 1, "\(call): \(denied.stdout)")
            #expect(denied.stderr.contains("PERMISSION_DENIED"), "\(call): \(denied.stderr)")
        }
        #expect(try await TestAdminClient(socketPath: agent.adminSocketPath).logLevel(set: nil).level == "warning")
        let allowed = try await cli.run(["status", "--json"] + socket, uid: 40013, gid: 40013)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("\"api_version\" : \"v1\""), "\(allowed.stdout)")
        await agent.stop()
    }

    @Test("log-level changes what the running agent logs, until the next reload")
    func logLevel() async throws {
        guard Self.isRoot() else { return }
        let logs = LogCapture()
        let agent = try await TestAgent.start(Self.entries, logs: logs)
        defer { agent.removeDirectory() }
        let client = TestAdminClient(socketPath: agent.adminSocketPath)
        _ = try await agent.client.fetchX509SVID()
        #expect(!logs.all.contains { $0.contains("caller attested") }, "a debug line at level warning")
        let answer = try await client.logLevel(set: "debug")
        #expect(answer.level == "debug" && answer.previous == "warning")
        _ = try await agent.client.fetchX509SVID()
        #expect(logs.all.contains { $0.hasPrefix("debug caller attested") }, "\(logs.all.suffix(3))")
        #expect(logs.all.contains { $0.contains("log level changed through the admin endpoint") })
        await #expect {
            _ = try await client.logLevel(set: "loud")
        } throws: { error in
            (error as? AdminClient.Failure)?.code == "INVALID_ARGUMENT"
        }
        #expect(try await client.logLevel(set: nil).level == "debug")
        await agent.stop()
    }
}

/// `explain` with the k8s attestor: real cgroups, a process moved into them, and the fake kubelet over HTTPS.
@Suite("Admin endpoint: explain with the k8s attestor", .serialized, .timeLimit(.minutes(5)))
struct AdminExplainK8sTests {
    /// A process that moves itself into `cgroup` and sleeps; returns once it is in there.
    static func sleeper(
        in cgroup: K8sAttestationIntegrationTests.PodCgroup,
        container: String
    ) async throws
        -> ChildProcess
    {
        let process = try await ChildProcess.start([
            "/bin/sh", "-c", "echo $$ > \(cgroup.path)/cgroup.procs && exec /bin/sleep 60",
        ])
        let placed = try await SPIREUpstreamIntegrationTests.eventually {
            ((try? String(contentsOfFile: "/proc/\(process.pid)/cgroup", encoding: .utf8)) ?? "").contains(container)
        }
        guard placed else { throw TestAgentError("the sleeper did not enter its cgroup") }
        return process
    }

    @Test("a pod's process, a pod the kubelet does not list yet, and an unreachable kubelet")
    func explainK8s() async throws {
        guard let roots = K8sAttestationIntegrationTests.cgroupRoots() else { return }
        let shop = FakePod.randomContainerID()
        let other = FakePod.randomContainerID()
        let setup = try await K8sAttestationIntegrationTests.start(
            pods: K8sAttestationIntegrationTests.pods(shopContainer: shop, otherContainer: other)
        )
        let client = TestAdminClient(socketPath: setup.agent.adminSocketPath)
        let shopCgroup = try K8sAttestationIntegrationTests.PodCgroup(
            root: roots.v2,
            version: 2,
            podUID: K8sAttestationIntegrationTests.shopPodUID,
            containerID: shop
        )
        let unlisted = FakePod.randomContainerID()
        let unlistedCgroup = try K8sAttestationIntegrationTests.PodCgroup(
            root: roots.v2,
            version: 2,
            podUID: "0badf00d-0000-4000-8000-000000000001",
            containerID: unlisted
        )
        defer {
            shopCgroup.remove()
            unlistedCgroup.remove()
        }

        let api = try await Self.sleeper(in: shopCgroup, container: shop)
        defer { api.stop() }
        let granted = try await client.explain(pid: api.pid)
        let k8s = try #require(granted.attestors.first { $0.name == "k8s" })
        #expect(k8s.error == nil && k8s.selectors.contains("k8s:ns:shop") && k8s.selectors.contains("k8s:sa:api"))
        #expect(granted.identities.map(\.spiffeId) == ["spiffe://example.org/ns/shop/sa/api"])
        #expect(granted.verdict == "would receive 1 identity")

        // A container of a pod the kubelet does not list: the attestor polls, then reports it.
        let stranger = try await Self.sleeper(in: unlistedCgroup, container: unlisted)
        defer { stranger.stop() }
        let waiting = try await client.explain(pid: stranger.pid)
        let unlistedK8s = try #require(waiting.attestors.first { $0.name == "k8s" })
        #expect(unlistedK8s.error != nil, "\(unlistedK8s)")
        #expect(waiting.verdict.hasPrefix("attestation fails (k8s)"), "\(waiting.verdict)")
        print("explain, pod not listed: \(unlistedK8s.error ?? "")")

        await setup.stop()

        // A kubelet that cannot be reached (stopped before the agent ever connected to it): the error says so.
        let offline = try await K8sAttestationIntegrationTests.start(
            pods: K8sAttestationIntegrationTests.pods(shopContainer: shop, otherContainer: other)
        )
        await offline.kubelet.stop()
        let unreachable = try await TestAdminClient(socketPath: offline.agent.adminSocketPath).explain(pid: api.pid)
        let failed = try #require(unreachable.attestors.first { $0.name == "k8s" })
        #expect(failed.error != nil && failed.error != unlistedK8s.error, "\(failed)")
        #expect(unreachable.verdict.hasPrefix("attestation fails (k8s)"), "\(unreachable.verdict)")
        print("explain, kubelet unreachable: \(failed.error ?? "")")
        await offline.stop()
    }
}
