import Attestation
import Foundation
import LanyardTestSupport
import SPIFFE

/// A node restart: 250 pods on the fake kubelet, all attesting at once against an agent that has just started (no
/// pod list cached, no HTTPS connection open). The kubelet must see a handful of list requests, and the slowest
/// caller must not wait much longer than one list read.
extension Benchmarks {
    mutating func podRestartStorm() async throws {
        let podCount = 250
        say("k8s: \(podCount) concurrent first attestations after a restart (fake kubelet, \(podCount) pods)")
        let home = try fresh("k8s-restart")
        let port = Int.random(in: 40_001...50_000)
        let kubelet = try await Self.startKubelet(binary: fakeKubelet, port: port, pods: podCount, directory: home)
        defer { kubelet.stop(SIGTERM) }
        let config = KubeletClient.Config(
            host: "127.0.0.1",
            securePort: port,
            tokenPath: home + "/token",
            caPath: home + "/ca.crt"
        )
        // The floor: one list read as a restarted agent makes it — a new client (TLS handshake), the request, the
        // parse. Median of 5.
        var reads = LatencySample()
        for _ in 0..<5 {
            let client = KubeletClient(config: config)
            let started = ContinuousClock.now
            _ = try await client.fetchPodList()
            reads.record(ContinuousClock.now - started)
        }
        let raw = try await Self.rawPodList(port: port, home: home)
        let list = try PodList(json: raw)
        let proc = home + "/proc"
        var pids: [Int32] = []
        for (index, pod) in list.pods.enumerated() {
            guard let id = pod.status?.containerStatuses?.first?.containerID?.split(separator: "/").last else {
                continue
            }
            let pid = Int32(300_000 + index)
            try FileManager.default.createDirectory(atPath: "\(proc)/\(pid)", withIntermediateDirectories: true)
            let underscored = pod.metadata.uid.replacingOccurrences(of: "-", with: "_")
            try
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(underscored).slice/cri-containerd-\(id).scope\n"
                .write(toFile: "\(proc)/\(pid)/cgroup", atomically: true, encoding: .utf8)
            pids.append(pid)
        }
        guard pids.count == podCount else {
            throw BenchError("only \(pids.count) of \(podCount) pods have a container")
        }
        // The restarted agent: a new client and fetcher, as `lanyard run` builds them.
        let client = KubeletClient(config: config)
        let fetcher = PodListFetcher(maximumAge: .seconds(60), minimumSpacing: .milliseconds(500)) {
            () async throws(AttestationError) -> PodList in try await client.fetchPodList()
        }
        let attestor = K8sAttestor(config: .init(procRoot: proc), fetcher: fetcher)
        let before = try await Self.kubeletRequests(port: port, home: home)
        let times = try await withThrowingTaskGroup(of: Duration.self) { group in
            for pid in pids {
                group.addTask {
                    let started = ContinuousClock.now
                    let selectors = try await attestor.attest(WorkloadProcess(pid: pid, uid: 0, gid: 0))
                    guard selectors.contains(where: { $0.value.hasPrefix("pod-uid:") }) else {
                        throw BenchError("pid \(pid) got no pod selectors")
                    }
                    return ContinuousClock.now - started
                }
            }
            var times: [Duration] = []
            for try await time in group { times.append(time) }
            return times
        }
        let requests = try await Self.kubeletRequests(port: port, home: home) - before
        var sample = LatencySample()
        times.forEach { sample.record($0) }
        let p99 = sample.percentile(0.99) / 1000, read = reads.percentile(0.5) / 1000
        add(
            Figure(
                name: "kubelet requests for \(podCount) concurrent first attestations",
                value: Double(requests),
                unit: "requests",
                target: "<= 3",
                met: requests <= 3
            )
        )
        add(
            Figure(
                name: "\(podCount) concurrent first attestations p99 (floor: one list read, new connection)",
                value: p99,
                unit: "ms",
                floor: read,
                ratio: p99 / read,
                target: "<= 3x floor",
                met: p99 <= 3 * read
            )
        )
    }
}
