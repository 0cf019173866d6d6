import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Upstream

/// `x509_svid_cache_max_size` on a node authorized for 10,000 entries: what a cold caller waits (one signing round
/// trip) next to what the same caller waits once warm, and the memory held once more callers came than the bound.
extension Benchmarks {
    static let boundedEntries = 10_000
    static let bound = 1000

    mutating func boundedCache() async throws {
        say("bounded X509-SVID cache: \(Self.boundedEntries) entries, x509_svid_cache_max_size = \(Self.bound)")
        guard getuid() == 0 else {
            say("  skipped: cold callers are child processes under other uids (setpriv), which needs root")
            return
        }
        let home = try fresh("bounded")
        chmod(home, 0o755)
        // Children run as other uids: they need a copy of this executable they can read.
        let child = home + "/lanyard-bench"
        try FileManager.default.copyItem(atPath: CommandLine.arguments[0], toPath: child)
        chmod(child, 0o755)
        let agent = try await AgentProcess(
            binary: lanyard,
            directory: home,
            config: Self.config(
                home,
                entries: Self.boundedEntries,
                topLevel: "x509_svid_cache_max_size = \(Self.bound)"
            ),
            timeout: 600
        )
        defer { agent.stop() }
        add(
            Figure(
                name: "start to READY=1 with \(Self.boundedEntries) entries, bounded (nothing signed ahead)",
                value: agent.readyAfter.seconds * 1000,
                unit: "ms",
                target: "-"
            )
        )
        let readyKiB = ProcessMemory.kib(pid: agent.pid)

        // One child per uid, each matching one entry: its first call is cold, its second (a new connection, as
        // the first) warm, so the two differ by exactly the on-demand signing.
        let samples = quick ? 20 : 100
        var cold = LatencySample()
        var warm = LatencySample()
        for index in 1...samples {
            let times = try await Self.coldAndWarm(child: child, socket: agent.socketPath, uid: 100_000 + index)
            cold.nanoseconds.append(times.cold)
            warm.nanoseconds.append(times.warm)
        }
        let signing = try Self.oneSigning()
        let floor = warm.percentile(0.5) + signing
        add(
            Figure(
                name: "cold-entry FetchX509SVID first message p50 (floor: warm p50 + one in-process signing)",
                value: cold.percentile(0.5),
                unit: "us",
                floor: floor,
                ratio: cold.percentile(0.5) / floor,
                target: "<= 2x floor",
                met: cold.percentile(0.5) <= 2 * floor
            )
        )
        add(Figure(name: "the same caller warm, p50", value: warm.percentile(0.5), unit: "us", target: "-"))

        // More callers than the bound, eight at a time: the cache must stop at the bound.
        let callers = quick ? Self.bound / 10 : Self.bound + Self.bound / 10
        var next = samples + 1
        while next <= callers {
            let batch = next..<min(next + 8, callers + 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in batch {
                    group.addTask {
                        _ = try await Self.coldAndWarm(child: child, socket: agent.socketPath, uid: 100_000 + index)
                    }
                }
                try await group.waitForAll()
            }
            next = batch.upperBound
        }
        // On-demand mints leave the snapshot to the next pass (every sync interval, 5 s by default).
        try await Task.sleep(for: .seconds(6))
        let servedKiB = ProcessMemory.kib(pid: agent.pid)
        let held = try Self.storedSVIDCount(home + "/data")
        add(
            Figure(
                name: "SVIDs held after \(callers) distinct callers (from identities.json)",
                value: Double(held),
                unit: "SVIDs",
                target: "<= \(Self.bound)",
                met: held <= Self.bound
            )
        )
        add(
            Figure(
                name: "RSS with \(Self.boundedEntries) entries, bound \(Self.bound), at ready",
                value: Double(readyKiB) / 1024,
                unit: "MiB",
                target: "-"
            )
        )
        add(
            Figure(
                name: "RSS with \(Self.boundedEntries) entries, bound \(Self.bound), after \(callers) callers",
                value: Double(servedKiB) / 1024,
                unit: "MiB",
                target: "-"
            )
        )
    }

    /// Runs the child as `uid`; returns its cold and warm times in nanoseconds.
    static func coldAndWarm(child: String, socket: String, uid: Int) async throws -> (cold: UInt64, warm: UInt64) {
        let output = try await run([
            "/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups", child, "cold-fetch-child",
            socket,
        ])
        let fields = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap {
            UInt64($0)
        }
        guard fields.count == 2 else {
            throw BenchError("cold-fetch-child as uid \(uid) printed \(String(decoding: output, as: UTF8.self))")
        }
        return (fields[0], fields[1])
    }

    /// In the child: two FetchX509SVID first messages, each on a new connection, printed in nanoseconds. A
    /// FetchJWTSVID first (which leaves the X509-SVID cache alone) warms the client itself, so the cold call differs
    /// from the warm one by the agent's work only.
    static func coldFetchChild(socket: String) async throws {
        _ = try await WorkloadAPIClient(socketPath: socket).withClient { api in
            var request = WorkloadAPI_JWTSVIDRequest()
            request.audience = ["warm-up"]
            return try await api.fetchJWTSVID(request, metadata: ["workload.spiffe.io": "true"])
        }
        var times: [UInt64] = []
        for _ in 0..<2 {
            let started = ContinuousClock.now
            let received = try await WorkloadAPIClient(socketPath: socket).withClient { api in
                try await api.fetchX509SVID(
                    WorkloadAPI_X509SVIDRequest(),
                    metadata: ["workload.spiffe.io": "true"]
                ) { response in
                    for try await message in response.messages { return message.svids.count }
                    return 0
                }
            }
            guard received == 1 else { throw BenchError("expected one x509-svid, got \(received)") }
            let elapsed = ContinuousClock.now - started
            times.append(
                UInt64(elapsed.components.seconds) * 1_000_000_000
                    + UInt64(elapsed.components.attoseconds / 1_000_000_000)
            )
        }
        print(times.map(String.init).joined(separator: " "))
    }

    /// The median cost of what an on-demand mint adds, in microseconds: a key, a CSR and a CA signature.
    static func oneSigning() throws -> Double {
        let now = Date()
        let authority = try CertificateAuthority.makeRoot(
            trustDomain: try TrustDomain("example.org"),
            keyType: .ecP256,
            ttl: .seconds(86_400),
            now: now
        )
        let id = try SPIFFEID("spiffe://example.org/bench/cold")
        var sample = LatencySample()
        for _ in 0..<200 {
            let started = ContinuousClock.now
            let key = try PrivateKey(generating: .ecP256)
            let csr = try CertificateSigningRequest(privateKey: key, spiffeID: id)
            _ = try authority.issueX509SVID(csr: csr, spiffeID: id, ttl: .seconds(3600), now: now)
            sample.record(ContinuousClock.now - started)
        }
        return sample.percentile(0.5)
    }

    /// How many SVIDs the agent's stored snapshot holds: what its cache held at its last pass.
    static func storedSVIDCount(_ dataDirectory: String) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: dataDirectory + "/identities.json"))
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let svids = json["svids"] as? [Any]
        else { throw BenchError("identities.json has no svids array") }
        return svids.count
    }
}
