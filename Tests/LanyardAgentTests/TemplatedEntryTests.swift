import Foundation
import LanyardTestSupport
import SPIFFE
import Testing

@testable import LanyardAgent

/// Templated entries in standalone mode: one entry, an identity per caller filled from its selectors.
@Suite("Templated entries", .serialized, .timeLimit(.minutes(5)))
struct TemplatedEntryTests {
    static func caller(ns: String, sa: String) -> Set<Selector> {
        [try! Selector("k8s:pod-label:mesh:on"), try! Selector("k8s:ns:\(ns)"), try! Selector("k8s:sa:\(sa)")]
    }

    @Test("instances are bounded, least recently used dropped first; a changed template drops its instances")
    func bounded() throws {
        let template = try EntryTemplate(
            "spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}",
            selectors: [try Selector("k8s:pod-label:mesh:on")]
        )
        let instances = TemplateInstances(templates: [template], limit: 3)
        #expect(instances.instantiate(for: Self.caller(ns: "a", sa: "1")))
        #expect(instances.instantiate(for: Self.caller(ns: "b", sa: "1")))
        #expect(instances.instantiate(for: Self.caller(ns: "c", sa: "1")))
        #expect(!instances.instantiate(for: Self.caller(ns: "a", sa: "1")))  // known: nothing new, but used now
        #expect(instances.instantiate(for: Self.caller(ns: "d", sa: "1")))
        #expect(instances.count == 3)
        let paths = Set(instances.entries.map(\.spiffeID.path))
        #expect(paths == ["/ns/a/sa/1", "/ns/c/sa/1", "/ns/d/sa/1"])  // b was the least recently used
        // Stable IDs: the same caller's instance has the same entry ID as before.
        let idOfA = instances.entries.first { $0.spiffeID.path == "/ns/a/sa/1" }?.id
        #expect(idOfA == EntrySettings.identified(template.instance(for: Self.caller(ns: "a", sa: "1"))!).id)
        // A caller the template does not apply to adds nothing.
        #expect(!instances.instantiate(for: [try Selector("k8s:ns:a"), try Selector("k8s:sa:1")]))

        var changed = template
        changed.x509SVIDTTL = .seconds(60)
        instances.replace(templates: [changed], limit: 3)
        #expect(instances.count == 0)
        instances.replace(templates: [changed], limit: 3)
        _ = instances.instantiate(for: Self.caller(ns: "a", sa: "1"))
        instances.replace(templates: [changed], limit: 3)
        #expect(instances.count == 1)
    }

    @Test("110 pods on the fake kubelet: each mesh pod gets its own ns/sa identity from one entry; others none")
    func meshOf110Pods() async throws {
        guard let roots = K8sAttestationIntegrationTests.cgroupRoots() else { return }
        var pods = FakePod.generated(count: 110, bytesPerPod: 2_000)
        for index in pods.indices where index % 2 == 0 { pods[index].labels["mesh"] = "on" }
        let kubelet = try await FakeKubelet.start(pods: pods)
        let directory = TestAgent.makeDirectory()
        try Data("fake-kubelet-token".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(kubelet.caPEM.utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        let agent = try await TestAgent.start(
            """
            [attestors.k8s]
            enabled = true
            kubelet_host = "127.0.0.1"
            kubelet_secure_port = \(kubelet.port)
            token_path = "\(directory)/token"
            kubelet_ca_path = "\(directory)/ca.crt"
            poll_retry_interval = "100ms"

            [[entries]]
            spiffe_id = "spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}"
            selectors = ["k8s:pod-label:mesh:on"]
            """,
            directory: directory
        )
        let cli = try LanyardCLI(copyInto: directory)
        var cgroups: [K8sAttestationIntegrationTests.PodCgroup] = []
        defer { for cgroup in cgroups { cgroup.remove() } }
        for pod in pods {
            let containerID = String(pod.containers[0].containerID.dropFirst("containerd://".count))
            cgroups.append(
                try .init(root: roots.v2, version: 2, podUID: pod.uid, containerID: containerID)
            )
        }
        // Ten callers at a time, each from its pod's main container; every answer kept in its own file.
        var script = ""
        for (index, cgroup) in cgroups.enumerated() {
            let fetch = "\(cli.binary) api fetch x509 --socket \(agent.socketPath)"
            script +=
                "sh -c 'echo $$ > \(cgroup.path)/cgroup.procs && exec \(fetch)' > \(directory)/out-\(index) 2>&1 &\n"
            if index % 10 == 9 { script += "wait\n" }
        }
        script += "wait\n"
        let run = try await LanyardCLI.runTool(["/bin/sh", "-c", script])
        #expect(run.status == 0, "\(run.stderr)")

        let idPattern = "spiffe://example.org/"
        for (index, pod) in pods.enumerated() {
            let output = (try? String(contentsOfFile: "\(directory)/out-\(index)", encoding: .utf8)) ?? ""
            let ids = output.components(separatedBy: .whitespacesAndNewlines).filter { $0.hasPrefix(idPattern) }
            if index % 2 == 0 {
                #expect(
                    Set(ids) == ["spiffe://example.org/ns/\(pod.namespace)/sa/\(pod.serviceAccount)"],
                    "pod \(index): \(output.prefix(400))"
                )
            } else {
                #expect(ids.isEmpty, "pod \(index) outside the mesh: \(output.prefix(400))")
            }
        }
        await agent.stop()
        await kubelet.stop()
        agent.removeDirectory()
    }
}
