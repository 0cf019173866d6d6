import Attestation
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import IdentityCache
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Logging
import SPIFFE
import SPIFFECrypto
import Synchronization
import Upstream

/// Every figure of the benchmark issue, each next to its floor measured in this run.
struct Benchmarks {
    let lanyard: String
    let fakeKubelet: String
    let directory: String
    let quick: Bool
    var figures: [Figure] = []

    static let uid = getuid()

    /// A config for an agent in `directory` with `count` entries, the first for this process's uid, the others for
    /// uids 100,000 + their index; `topLevel` keys go above the sections.
    static func config(_ directory: String, entries count: Int, topLevel: String = "") -> String {
        var text = """
            trust_domain = "example.org"
            data_dir = "\(directory)/data"
            log_level = "warning"
            \(topLevel)

            [workload_api]
            socket_path = "\(directory)/api.sock"

            [health]
            listen = ""

            [admin]
            socket_path = ""

            """
        for index in 0..<count {
            let selector = index == 0 ? "unix:uid:\(Self.uid)" : "unix:uid:\(100_000 + index)"
            text +=
                "\n[[entries]]\nspiffe_id = \"spiffe://example.org/bench/\(index)\"\nselectors = [\"\(selector)\"]\n"
        }
        return text
    }

    func fresh(_ name: String) throws -> String {
        let path = directory + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    mutating func add(_ figure: Figure) {
        figures.append(figure)
        let floor = figure.floor.map { String(format: " (floor %.1f)", $0) } ?? ""
        let ratio = figure.ratio.map { String(format: ", ratio %.2f", $0) } ?? ""
        let verdict = figure.met.map { $0 ? "met" : "MISSED" } ?? "-"
        say(
            String(format: "  %@: %.1f %@", figure.name, figure.value, figure.unit) + floor + ratio
                + " [\(figure.target): \(verdict)]"
        )
    }

    // MARK: - Start to READY=1

    mutating func startup() async throws {
        say("start to READY=1")
        let home = try fresh("startup")
        let config = Self.config(home, entries: 10)
        let first = try await AgentProcess(binary: lanyard, directory: home, config: config)
        first.stop()
        var runs: [Double] = []
        for _ in 0..<5 {
            let agent = try await AgentProcess(binary: lanyard, directory: home, config: config)
            runs.append(
                Double(agent.readyAfter.components.attoseconds) / 1e15 + Double(agent.readyAfter.components.seconds)
                    * 1000
            )
            agent.stop()
        }
        runs.sort()
        let firstMs =
            Double(first.readyAfter.components.attoseconds) / 1e15 + Double(first.readyAfter.components.seconds) * 1000
        add(Figure(name: "start to READY=1, first start (new CA)", value: firstMs, unit: "ms", target: "-"))
        add(
            Figure(
                name: "start to READY=1 with persisted state (median of 5)",
                value: runs[2],
                unit: "ms",
                target: "<= 300 ms",
                met: runs[2] <= 300
            )
        )
        // A node's worth of entries: the restart reads them from the config and the SVIDs from the snapshot.
        let count = quick ? 2000 : 10_000
        let bigHome = try fresh("startup-\(count)")
        let bigConfig = Self.config(bigHome, entries: count)
        let bigFirst = try await AgentProcess(binary: lanyard, directory: bigHome, config: bigConfig, timeout: 600)
        bigFirst.stop()
        var bigRuns: [Double] = []
        for _ in 0..<3 {
            let agent = try await AgentProcess(binary: lanyard, directory: bigHome, config: bigConfig, timeout: 600)
            bigRuns.append(agent.readyAfter.seconds * 1000)
            agent.stop()
        }
        bigRuns.sort()
        add(
            Figure(
                name: "start to READY=1 with \(count) entries, first start",
                value: bigFirst.readyAfter.seconds * 1000,
                unit: "ms",
                target: "-"
            )
        )
        add(
            Figure(
                name: "start to READY=1 with \(count) entries and persisted state (median of 3)",
                value: bigRuns[1],
                unit: "ms",
                target: "<= 500 ms",
                met: bigRuns[1] <= 500
            )
        )
    }

    // MARK: - RPC latency and throughput

    /// `calls` FetchJWTSVID calls from each of `clients` connections at once.
    static func fetchJWT(socket: String, clients: Int, calls: Int) async throws -> LatencySample {
        let samples = try await withThrowingTaskGroup(of: LatencySample.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    try await WorkloadAPIClient(socketPath: socket).withClient { api in
                        var request = WorkloadAPI_JWTSVIDRequest()
                        request.audience = ["bench"]
                        let metadata: Metadata = ["workload.spiffe.io": "true"]
                        for _ in 0..<50 { _ = try await api.fetchJWTSVID(request, metadata: metadata) }
                        var sample = LatencySample()
                        for _ in 0..<calls {
                            let started = ContinuousClock.now
                            let response = try await api.fetchJWTSVID(request, metadata: metadata)
                            sample.record(ContinuousClock.now - started)
                            guard !response.svids.isEmpty else { throw BenchError("no jwt-svid returned") }
                        }
                        return sample
                    }
                }
            }
            var all: [LatencySample] = []
            for try await sample in group { all.append(sample) }
            return all
        }
        var merged = LatencySample()
        merged.nanoseconds = samples.flatMap(\.nanoseconds)
        return merged
    }

    /// Runs `fetchJWT` and measures the wall time of the timed part.
    static func timedFetchJWT(socket: String, clients: Int, calls: Int) async throws -> LatencySample {
        let started = ContinuousClock.now
        var sample = try await fetchJWT(socket: socket, clients: clients, calls: calls)
        sample.wall = ContinuousClock.now - started
        return sample
    }

    /// Time to the first message of `count` new FetchX509SVID streams, one at a time. A client can end a server
    /// stream only by resetting it, and HTTP/2 servers (NIO's included) close a connection after 200 resets in
    /// 30 s as a rapid-reset defence, so each connection carries at most 150 of them (set up outside the timing).
    static func firstX509Message(socket: String, count: Int) async throws -> LatencySample {
        var sample = LatencySample()
        var remaining = count
        var warmUp = 20
        while remaining > 0 {
            let batch = min(remaining, 150 - warmUp)
            let warm = warmUp
            let part = try await WorkloadAPIClient(socketPath: socket).withClient { api in
                let metadata: Metadata = ["workload.spiffe.io": "true"]
                var sample = LatencySample()
                for index in 0..<(warm + batch) {
                    let started = ContinuousClock.now
                    let received = try await api.fetchX509SVID(WorkloadAPI_X509SVIDRequest(), metadata: metadata) {
                        response in
                        for try await message in response.messages { return message.svids.count }
                        return 0
                    }
                    if index >= warm { sample.record(ContinuousClock.now - started) }
                    guard received > 0 else { throw BenchError("no x509-svid returned") }
                }
                return sample
            }
            sample.nanoseconds += part.nanoseconds
            remaining -= batch
            warmUp = 5
        }
        return sample
    }

    mutating func rpcs() async throws {
        say("Workload API RPCs (agent and floor server are separate processes on Unix sockets)")
        var jwtP50 = 0.0
        let home = try fresh("rpc")
        let agent = try await AgentProcess(binary: lanyard, directory: home, config: Self.config(home, entries: 10))
        defer { agent.stop() }
        let floor = try await FloorProcess(directory: home)
        defer { floor.stop() }
        let calls = quick ? 300 : 3000
        for clients in [1, 16] {
            let perClient = clients == 1 ? calls : calls / 4
            let floorSample = try await Self.timedFetchJWT(socket: floor.socketPath, clients: clients, calls: perClient)
            let agentSample = try await Self.timedFetchJWT(socket: agent.socketPath, clients: clients, calls: perClient)
            let p50 = agentSample.percentile(0.5), floorP50 = floorSample.percentile(0.5)
            if clients == 1 { jwtP50 = p50 }
            add(
                Figure(
                    name: "FetchJWTSVID p50, \(clients) client(s)",
                    value: p50,
                    unit: "us",
                    floor: floorP50,
                    ratio: p50 / floorP50,
                    target: "<= 1.25x floor",
                    met: p50 <= 1.25 * floorP50
                )
            )
            add(
                Figure(
                    name: "FetchJWTSVID p99, \(clients) client(s)",
                    value: agentSample.percentile(0.99),
                    unit: "us",
                    floor: floorSample.percentile(0.99),
                    ratio: agentSample.percentile(0.99) / floorSample.percentile(0.99),
                    target: "-"
                )
            )
            let throughput = agentSample.throughput, floorThroughput = floorSample.throughput
            add(
                Figure(
                    name: "FetchJWTSVID throughput, \(clients) client(s)",
                    value: throughput,
                    unit: "calls/s",
                    floor: floorThroughput,
                    ratio: throughput / floorThroughput,
                    target: ">= 0.7x floor",
                    met: throughput >= 0.7 * floorThroughput
                )
            )
        }
        let streams = quick ? 100 : 1000
        let agentFirst: LatencySample
        do {
            agentFirst = try await Self.firstX509Message(socket: agent.socketPath, count: streams)
        } catch {
            throw BenchError("first x509 message from the agent: \(error)")
        }
        let floorFirst: LatencySample
        do {
            floorFirst = try await Self.firstX509Message(socket: floor.socketPath, count: streams)
        } catch {
            throw BenchError("first x509 message from the floor: \(error)")
        }
        let p50 = agentFirst.percentile(0.5), floorP50 = floorFirst.percentile(0.5)
        add(
            Figure(
                name: "FetchX509SVID first message p50",
                value: p50,
                unit: "us",
                floor: floorP50,
                ratio: p50 / floorP50,
                target: "<= 1.5x floor",
                met: p50 <= 1.5 * floorP50
            )
        )
        try pinCheck(jwtP50: jwtP50)
    }

    /// What every call pays to check that its caller is still the process that connected: `ProcessPin.verify()`
    /// (a pidfd `poll`, `PIDFD_GET_INFO`, a `stat` of `/proc/<pid>/exe`), on this live process.
    mutating func pinCheck(jwtP50: Double) throws {
        let pin = ProcessPin(pid: getpid(), uid: geteuid(), gid: getegid(), descriptor: .openByPID)
        try pin.verify()
        let count = quick ? 10_000 : 100_000
        let started = ContinuousClock.now
        for _ in 0..<count { try pin.verify() }
        let perCall = (ContinuousClock.now - started).seconds / Double(count) * 1e6
        add(
            Figure(
                name: "caller pin check per call (share of FetchJWTSVID p50)",
                value: perCall,
                unit: "us",
                floor: jwtP50,
                ratio: perCall / jwtP50,
                target: "<= 5% of FetchJWTSVID p50",
                met: perCall <= 0.05 * jwtP50
            )
        )
    }

    // MARK: - ValidateJWTSVID

    mutating func validation() throws {
        say("JWT-SVID ES256 validation on one core (in-process)")
        let key = try PrivateKey(generating: .ecP256)
        let signer = try JWTSVIDSigner(privateKey: key, keyID: "bench")
        let svid = try signer.sign(
            spiffeID: SPIFFEID("spiffe://example.org/bench"),
            audience: ["bench"],
            expiresAt: Date() + 3600,
            issuedAt: Date()
        )
        let bundle = SPIFFEBundle(
            trustDomain: try TrustDomain("example.org"),
            jwtAuthorities: [try signer.bundleAuthority]
        )
        let validator = JWTSVIDValidator()
        let count = quick ? 2000 : 20_000
        let parts = svid.token.split(separator: ".")
        let signingInput = Data("\(parts[0]).\(parts[1])".utf8)
        let signature = Data(base64URLEncoded: String(parts[2]))!
        let publicKey = try key.publicKey
        var started = ContinuousClock.now
        for _ in 0..<count where !publicKey.isValidSignature(signature, over: signingInput, algorithm: .es256) {
            throw BenchError("the floor's signature did not verify")
        }
        let floorSeconds = (ContinuousClock.now - started).seconds
        started = ContinuousClock.now
        for _ in 0..<count {
            _ = try validator.validate(svid.token, audience: "bench", bundles: { _ in bundle }, at: Date())
        }
        let seconds = (ContinuousClock.now - started).seconds
        let rate = Double(count) / seconds, floorRate = Double(count) / floorSeconds
        add(
            Figure(
                name: "ValidateJWTSVID ES256 throughput",
                value: rate,
                unit: "tokens/s",
                floor: floorRate,
                ratio: rate / floorRate,
                target: ">= 0.9x raw verify",
                met: rate >= 0.9 * floorRate
            )
        )
    }

    // MARK: - Rotation

    mutating func rotation() async throws {
        let count = quick ? 1000 : 10_000
        say("rotation of \(count) X.509 SVIDs through the local upstream (in-process)")
        let home = try fresh("rotation")
        let now = Date()
        let authority = try LocalAuthority(
            config: .init(trustDomain: try TrustDomain("example.org"), dataDirectory: home + "/authority"),
            now: now
        )
        let entries = try (0..<count).map { index in
            RegistrationEntry(
                id: "e\(index)",
                spiffeID: try SPIFFEID("spiffe://example.org/bench/\(index)"),
                selectors: [try Selector("unix:uid:\(100_000 + index)")]
            )
        }
        var started = ContinuousClock.now
        for entry in entries {
            let key = try PrivateKey(generating: .ecP256)
            let csr = try CertificateSigningRequest(privateKey: key, spiffeID: entry.spiffeID)
            _ = try authority.signX509SVID(csr: csr, spiffeID: entry.spiffeID, ttl: nil, dnsNames: [], now: now)
        }
        let floorSeconds = (ContinuousClock.now - started).seconds
        let cache = IdentityCache()
        let rotator = SVIDRotator(
            cache: cache,
            upstream: LocalUpstream(
                authority: authority,
                entries: entries,
                federatedBundles: [:],
                logger: Logger(label: "bench")
            ),
            logger: Logger(label: "bench")
        )
        ProcessMemory.resetPeak()
        let before = ProcessMemory.kib()
        started = ContinuousClock.now
        let minted = await rotator.syncOnce(at: now)
        let seconds = (ContinuousClock.now - started).seconds
        guard minted == count else { throw BenchError("minted \(minted) of \(count)") }
        add(
            Figure(
                name: "rotation of \(count) SVIDs, wall",
                value: seconds * 1000,
                unit: "ms",
                floor: floorSeconds * 1000,
                ratio: seconds / floorSeconds,
                target: "<= 1.2x floor",
                met: seconds <= 1.2 * floorSeconds
            )
        )
        add(
            Figure(
                name: "in-process cache growth per SVID (rotation bench)",
                value: Double(ProcessMemory.kib() - before) * 1024 / Double(count),
                unit: "bytes",
                target: "-"
            )
        )
    }

    // MARK: - Memory of the agent process

    mutating func memory() async throws {
        say("agent process memory (VmRSS)")
        let home = try fresh("memory")
        let idle = try await AgentProcess(binary: lanyard, directory: home, config: Self.config(home, entries: 1))
        try await Task.sleep(for: .seconds(1))
        let idleKiB = ProcessMemory.kib(pid: idle.pid)
        let idleAnonymousKiB = ProcessMemory.anonymousKiB(pid: idle.pid)
        add(
            Figure(
                name: "idle private (anonymous) memory",
                value: Double(idleAnonymousKiB) / 1024,
                unit: "MiB",
                target: "-"
            )
        )
        add(
            Figure(
                name: "idle RSS (1 entry)",
                value: Double(idleKiB) / 1024,
                unit: "MiB",
                target: "<= 25 MiB",
                met: idleKiB <= 25 * 1024
            )
        )

        // Idle CPU: the agent's user and system time over a quiet minute.
        let quiet: Double = quick ? 10 : 60
        let cpuBefore = ProcessMemory.cpuSeconds(pid: idle.pid)
        try await Task.sleep(for: .seconds(quiet))
        let idleCPU = (ProcessMemory.cpuSeconds(pid: idle.pid) - cpuBefore) / quiet * 100
        add(
            Figure(
                name: "idle CPU over \(Int(quiet)) s (1 entry)",
                value: idleCPU,
                unit: "% of a core",
                target: "<= 0.1 %",
                met: idleCPU <= 0.1
            )
        )
        let streams = quick ? 100 : 1000
        let connections = streams / 50
        let (holder, opened) = try await Self.holdStreams(socket: idle.socketPath, count: streams)
        try await Task.sleep(for: .milliseconds(500))
        let withStreams = ProcessMemory.kib(pid: idle.pid)
        let growth = Double(withStreams - idleKiB) / 1024
        add(
            Figure(
                name: "open file descriptors with \(opened) streams on \(connections) connections",
                value: Double(ProcessMemory.openDescriptors(pid: idle.pid)),
                unit: "fds",
                target: "-"
            )
        )
        // The same streams on the floor server: what the gRPC stack itself costs per stream.
        let floor = try await FloorProcess(directory: try fresh("memory-floor"))
        try await Task.sleep(for: .milliseconds(500))
        let floorIdle = ProcessMemory.kib(pid: floor.process.pid)
        let (floorHolder, _) = try await Self.holdStreams(socket: floor.socketPath, count: streams)
        try await Task.sleep(for: .milliseconds(500))
        let floorGrowth = Double(ProcessMemory.kib(pid: floor.process.pid) - floorIdle) / 1024
        floorHolder.cancel()
        _ = try? await floorHolder.value
        floor.stop()
        add(
            Figure(
                name: "RSS growth with \(opened) open FetchX509SVID streams",
                value: growth,
                unit: "MiB",
                floor: floorGrowth,
                ratio: growth / floorGrowth,
                target: streams == 1000 ? "<= 30 MiB" : "-",
                met: streams == 1000 ? growth <= 30 && opened == 1000 : nil
            )
        )
        holder.cancel()
        _ = try? await holder.value
        idle.stop()

        let count = quick ? 1000 : 10_000
        let big = try await AgentProcess(
            binary: lanyard,
            directory: try fresh("memory-big"),
            config: Self.config(directory + "/memory-big", entries: count),
            timeout: 600
        )
        try await Task.sleep(for: .seconds(1))
        let bigKiB = ProcessMemory.kib(pid: big.pid)
        let bigAnonymousKiB = ProcessMemory.anonymousKiB(pid: big.pid)
        big.stop()
        add(
            Figure(
                name: "private memory per cached SVID",
                value: Double(bigAnonymousKiB - idleAnonymousKiB) / Double(count - 1),
                unit: "KiB",
                target: "-"
            )
        )
        let perSVID = Double(bigKiB - idleKiB) * 1024 / Double(count - 1)
        add(Figure(name: "RSS with \(count) cached SVIDs", value: Double(bigKiB) / 1024, unit: "MiB", target: "-"))
        add(
            Figure(
                name: "RSS per cached SVID",
                value: perSVID / 1024,
                unit: "KiB",
                target: "<= 3 KiB",
                met: perSVID <= 3 * 1024
            )
        )
    }

    /// Opens `count` FetchX509SVID streams (50 per connection) and holds them until the returned task is
    /// cancelled; returns once every stream has its first message (or after a minute).
    static func holdStreams(socket: String, count: Int) async throws -> (Task<Void, any Error>, Int) {
        let ready = StreamCounter()
        let holder = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<(count / 50) {
                    group.addTask {
                        try await WorkloadAPIClient(socketPath: socket).withClient { api in
                            try await withThrowingTaskGroup(of: Void.self) { streams in
                                for _ in 0..<50 {
                                    streams.addTask {
                                        try await api.fetchX509SVID(
                                            WorkloadAPI_X509SVIDRequest(),
                                            metadata: ["workload.spiffe.io": "true"]
                                        ) {
                                            response in
                                            for try await _ in response.messages {
                                                ready.value.add(1, ordering: .relaxed)
                                                try await Task.sleep(for: .seconds(3600))
                                            }
                                        }
                                    }
                                }
                                try await streams.waitForAll()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while ready.value.load(ordering: .relaxed) < count && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        return (holder, ready.value.load(ordering: .relaxed))
    }

    // MARK: - k8s attestation

    mutating func kubernetes() async throws {
        say("k8s attestation against the fake kubelet (110 pods, separate process, HTTPS)")
        let home = try fresh("k8s")
        let port = Int.random(in: 20_000...40_000)
        let kubelet = try await Self.startKubelet(binary: fakeKubelet, port: port, pods: 110, directory: home)
        defer { kubelet.stop(SIGTERM) }
        // A one-pod kubelet, so a child process can warm the HTTPS client up before it measures a cold attestation.
        let tinyPort = port + 1
        let tiny = try await Self.startKubelet(
            binary: fakeKubelet,
            port: tinyPort,
            pods: 1,
            directory: try fresh("k8s-tiny")
        )
        defer { tiny.stop(SIGTERM) }
        let client = KubeletClient(
            config: .init(host: "127.0.0.1", securePort: port, tokenPath: home + "/token", caPath: home + "/ca.crt")
        )
        // The list once, to learn its containers and size, and to parse it alone: the floor.
        let raw = try await Self.rawPodList(port: port, home: home)
        let list = try PodList(json: raw)
        var floorSample = LatencySample()
        for _ in 0..<20 {
            let started = ContinuousClock.now
            _ = try PodList(json: raw)
            floorSample.record(ContinuousClock.now - started)
        }
        // A /proc with one fake process per container, so attestation runs its real path without real pods.
        let proc = home + "/proc"
        var pids: [Int32] = []
        for (index, pod) in list.pods.enumerated() {
            guard let status = pod.status?.containerStatuses?.first,
                let id = status.containerID?.split(separator: "/").last
            else { continue }
            let pid = Int32(200_000 + index)
            try FileManager.default.createDirectory(atPath: "\(proc)/\(pid)", withIntermediateDirectories: true)
            let underscored = pod.metadata.uid.replacingOccurrences(of: "-", with: "_")
            try
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(underscored).slice/cri-containerd-\(id).scope\n"
                .write(toFile: "\(proc)/\(pid)/cgroup", atomically: true, encoding: .utf8)
            pids.append(pid)
        }
        func attestor(cacheTTL: Duration) -> K8sAttestor {
            let fetcher = PodListFetcher(maximumAge: cacheTTL, minimumSpacing: .milliseconds(500)) {
                () async throws(AttestationError) -> PodList in try await client.fetchPodList()
            }
            return K8sAttestor(config: .init(procRoot: proc), fetcher: fetcher)
        }
        // Peak memory is measured in a fresh child process: in this one, memory freed by earlier work would be
        // reused and hide what a cold attestation needs.
        let peakOutput = try await Self.run([
            CommandLine.arguments[0], "k8s-peak-child", "\(port)", home, "\(tinyPort)", directory + "/k8s-tiny", proc,
            "\(pids[0])",
        ])
        guard
            let peakGrowth = Double(
                String(decoding: peakOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            )
        else {
            throw BenchError("the peak-memory child printed \(String(decoding: peakOutput, as: UTF8.self))")
        }
        let cold = attestor(cacheTTL: .seconds(60))
        var started = ContinuousClock.now
        let selectors = try await cold.attest(WorkloadProcess(pid: pids[0], uid: 0, gid: 0))
        let coldTime = ContinuousClock.now - started
        guard selectors.contains(where: { $0.value.hasPrefix("ns:") }) else { throw BenchError("no k8s selectors") }
        var warm = LatencySample()
        for index in 0..<(quick ? 200 : 2000) {
            started = ContinuousClock.now
            _ = try await cold.attest(WorkloadProcess(pid: pids[index % pids.count], uid: 0, gid: 0))
            warm.record(ContinuousClock.now - started)
        }
        let storm = attestor(cacheTTL: .seconds(60))
        let stormBefore = try await Self.kubeletRequests(port: port, home: home)
        let stormPIDs = pids
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask {
                    _ = try await storm.attest(WorkloadProcess(pid: stormPIDs[index % stormPIDs.count], uid: 0, gid: 0))
                }
            }
            try await group.waitForAll()
        }
        // The /stats read itself is not counted by the kubelet.
        let stormRequests = try await Self.kubeletRequests(port: port, home: home) - stormBefore
        let coldMs = Double(coldTime.components.attoseconds) / 1e15 + Double(coldTime.components.seconds) * 1000
        add(Figure(name: "pod list size", value: Double(raw.count) / 1024, unit: "KiB", target: "-"))
        add(
            Figure(
                name: "first attestation (TLS connect, fetch, read, match)",
                value: coldMs,
                unit: "ms",
                floor: floorSample.percentile(0.5) / 1000,
                ratio: coldMs / (floorSample.percentile(0.5) / 1000),
                target: "-"
            )
        )
        add(
            Figure(
                name: "warm attestation p50",
                value: warm.percentile(0.5) / 1000,
                unit: "ms",
                target: "<= 2 ms",
                met: warm.percentile(0.5) <= 2000
            )
        )
        add(
            Figure(
                name: "kubelet requests for 50 concurrent attestations",
                value: Double(stormRequests),
                unit: "requests",
                target: "1",
                met: stormRequests == 1
            )
        )
        add(
            Figure(
                name: "peak RSS growth of a cold attestation / list size",
                value: peakGrowth / Double(raw.count),
                unit: "x",
                target: "<= 2x",
                met: peakGrowth <= 2 * Double(raw.count)
            )
        )
    }

    /// The fake kubelet as a child process serving `pods` generated pods, its CA and token written into `directory`.
    static func startKubelet(binary: String, port: Int, pods: Int, directory: String) async throws -> ChildProcess {
        let kubelet = try await ChildProcess.start([
            binary, "--port", "\(port)", "--generate", "\(pods)", "--write-ca", directory + "/ca.crt", "--write-token",
            directory + "/token",
        ])
        let deadline = Date() + 30
        while !FileManager.default.fileExists(atPath: directory + "/token") {
            guard Date() < deadline else { throw BenchError("the fake kubelet did not start") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return kubelet
    }

    /// In a fresh process: warm the HTTPS client up on the tiny kubelet, then print the peak RSS growth (bytes) of
    /// one cold attestation against the big one.
    static func measureColdAttestationPeak(arguments: [String]) async throws {
        guard arguments.count == 6, let port = Int(arguments[0]), let tinyPort = Int(arguments[2]),
            let pid = Int32(arguments[5])
        else { throw BenchError("usage: k8s-peak-child PORT DIR TINY_PORT TINY_DIR PROC PID") }
        let (home, tinyHome, proc) = (arguments[1], arguments[3], arguments[4])
        let tiny = KubeletClient(
            config: .init(
                host: "127.0.0.1",
                securePort: tinyPort,
                tokenPath: tinyHome + "/token",
                caPath: tinyHome + "/ca.crt"
            )
        )
        _ = try await tiny.fetchPodList()
        let client = KubeletClient(
            config: .init(host: "127.0.0.1", securePort: port, tokenPath: home + "/token", caPath: home + "/ca.crt")
        )
        let fetcher = PodListFetcher(maximumAge: .seconds(60), minimumSpacing: .zero) {
            () async throws(AttestationError) -> PodList in try await client.fetchPodList()
        }
        ProcessMemory.resetPeak()
        let before = ProcessMemory.kib()
        _ = try await K8sAttestor(config: .init(procRoot: proc), fetcher: fetcher).attest(
            WorkloadProcess(pid: pid, uid: 0, gid: 0)
        )
        print((ProcessMemory.kib("VmHWM") - before) * 1024)
    }

    /// The fake kubelet's request count (its `/stats`), read with curl so this process's memory is not touched.
    static func kubeletRequests(port: Int, home: String) async throws -> Int {
        let output = try await run([
            "/usr/bin/curl", "-s", "--cacert", home + "/ca.crt", "https://localhost:\(port)/stats",
        ])
        guard let object = try JSONSerialization.jsonObject(with: output) as? [String: Int],
            let count = object["requests"]
        else {
            throw BenchError("cannot read the fake kubelet's /stats")
        }
        return count
    }

    static func rawPodList(port: Int, home: String) async throws -> Data {
        let token = try String(contentsOfFile: home + "/token", encoding: .utf8)
        return try await run([
            "/usr/bin/curl", "-s", "--cacert", home + "/ca.crt", "-H", "Authorization: Bearer \(token)",
            "https://localhost:\(port)/pods",
        ])
    }

    /// Runs a tool to completion; its standard output.
    static func run(_ arguments: [String]) async throws -> Data {
        Data(try await ChildProcess.run(arguments, discardingErrors: true).bytes)
    }
}

/// Streams that received their first message.
final class StreamCounter: Sendable {
    let value = Atomic<Int>(0)
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
