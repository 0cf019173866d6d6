import Foundation
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Testing
import Upstream

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

/// The `lanyard` process killed with SIGKILL at random moments, over and over, while it writes its state (a root
/// generation at start-up and at half-life; the agent identity at every renewal) and rotates SVIDs. Every restart
/// must find valid state, keep its identity, and serve.
@Suite("SIGKILL at random points, many times", .serialized, .timeLimit(.minutes(5)))
struct KillRestartTests {
    static let entry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/workload"
        selectors = ["unix:uid:\(getuid())"]
        """

    /// Starts the agent and waits for READY=1 (up to 30 s); nil when it did not get there.
    static func startReady(
        config: String,
        directory: String,
        cli: LanyardCLI,
        listener: NotifyListener
    ) async throws -> AgentProcess? {
        while listener.next(timeout: 0) != nil {}
        let agent = try await AgentProcess(
            ["run", "--config", config],
            directory: directory,
            environment: ["NOTIFY_SOCKET": listener.path],
            cli: cli
        )
        let ready = try await offPool { listener.wait(for: "READY=1", timeout: 30) }
        if ready == nil {
            agent.killNow()
            print("no READY=1; the agent's log:\n\(agent.log)")
            return nil
        }
        return agent
    }

    /// Starts the agent and kills it after a random delay in `window` seconds.
    static func killAtRandom(
        config: String,
        directory: String,
        cli: LanyardCLI,
        window: ClosedRange<Double>
    ) async throws {
        let agent = try await AgentProcess(["run", "--config", config], directory: directory, cli: cli)
        try await Task.sleep(for: .milliseconds(Int(Double.random(in: window) * 1000)))
        agent.signal(SIGKILL)
        _ = await agent.waitForExit(timeout: 10)
    }

    /// The X509-SVID the agent serves, verified against the bundle it serves; returns the bundle's roots.
    static func verifiedRoots(socket: String) async throws -> Set<Data> {
        let response = try await WorkloadAPIClient(socketPath: socket).fetchX509SVID()
        let svid = try #require(response.svids.first)
        let roots = try Certificate.chain(derConcatenated: svid.bundle)
        let chain = try Certificate.chain(derConcatenated: svid.x509Svid)
        // Checked at a moment the leaf is valid: with 2 s SVIDs on a loaded machine, one served a few milliseconds
        // before its end (the agent serves an SVID until it expires) can expire on the way to this check.
        let id = try X509SVIDVerifier.verify(
            chain,
            bundle: X509Bundle(trustDomain: try TrustDomain("example.org"), authorities: roots),
            at: min(Date(), chain[0].notAfter - 0.001)
        )
        #expect(id.description == "spiffe://example.org/workload")
        return Set(roots.map(\.derEncoded))
    }

    /// What a crash may leave in `authority/`: never a certificate without both keys, and every certificate loads.
    static func checkAuthorityFiles(_ directory: String) throws {
        // A kill before the agent created the directory leaves nothing to check.
        guard FileManager.default.fileExists(atPath: directory) else { return }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        for name in names where name.hasSuffix(".pem") {
            let stem = String(name.dropLast(4))
            #expect(names.contains(stem + ".key") && names.contains(stem + ".jwt.key"), "\(name) without its keys")
            _ = try Certificate(pemEncoded: String(contentsOfFile: directory + "/" + name, encoding: .utf8))
        }
    }

    /// Every restart loaded the identity snapshot or found none: a refused one is set aside as `.refused-<time>`,
    /// so none may exist, and the last run left one behind.
    static func checkSnapshots(_ dataDirectory: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: dataDirectory)
        #expect(!names.contains { $0.contains(".refused-") }, "a restart found a partial or corrupt snapshot: \(names)")
        #expect(names.contains(IdentitySnapshotFile.fileName), "no identity snapshot: \(names)")
    }

    @Test("standalone: 40 kills during start-up, root generation and SVID rotation; every restart keeps the roots")
    func standalone() async throws {
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        // A 20 s root makes the next one at 10 s, so later start-ups write a generation; SVIDs rotate every ~1 s.
        let config = try writeConfig(
            directory,
            socket: socket,
            entries: "[upstream.local]\nca_ttl = \"20s\"\nx509_svid_ttl = \"2s\"\n\n" + Self.entry
        )
        let cli = try LanyardCLI(copyInto: directory)
        let listener = try NotifyListener(path: directory + "/notify.sock")
        var previous = Set<Data>()
        var kills = 0
        var verified = 0
        for round in 0..<8 {
            for _ in 0..<5 {
                try await Self.killAtRandom(config: config, directory: directory, cli: cli, window: 0.0...0.8)
                kills += 1
                try Self.checkAuthorityFiles(directory + "/data/authority")
            }
            let agent = try #require(
                try await Self.startReady(config: config, directory: directory, cli: cli, listener: listener),
                "round \(round): no READY=1 after \(kills) kills"
            )
            let roots = try await Self.verifiedRoots(socket: socket)
            // The roots it published before are still published, unless they expired since.
            let live = previous.filter {
                ((try? Certificate(derEncoded: $0))?.notAfter ?? .distantPast) > Date() + 1
            }
            #expect(live.isSubset(of: roots), "round \(round): a live root disappeared across restarts")
            previous = roots
            verified += 1
            agent.signal(SIGKILL)
            _ = await agent.waitForExit(timeout: 10)
            kills += 1
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory + "/data/authority").filter {
            $0.contains(".tmp-")
        }
        try Self.checkSnapshots(directory + "/data")
        print(
            "kill/restart standalone: \(kills) SIGKILLs, \(verified) verified restarts, temp files left now: \(leftovers.count)"
        )
        #expect(verified == 8)
    }

    @Test("fleet mode: 25 kills during renewals of an 8 s agent SVID; it never attests again and always serves")
    func fleet() async throws {
        guard getuid() == 0 else {
            print("skipped: the fleet kill test registers an entry for uid 0 and needs root")
            return
        }
        let server = try await SPIREUpstreamIntegrationTests.startServer(agentSVIDTTL: .seconds(8))
        try server.addEntry(spiffeID: "spiffe://example.org/workload", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let upstream = try SPIREUpstreamIntegrationTests.upstream(server, directory: directory)
        let config = try writeConfig(directory, socket: socket, entries: upstream)
        let cli = try LanyardCLI(copyInto: directory)
        let listener = try NotifyListener(path: directory + "/notify.sock")
        let trustDomain = try TrustDomain("example.org")
        var kills = 0
        // The first attestation completes unkilled: a join token the server accepted from an agent killed before it
        // stored the SVID is spent for good (SPIRE's join tokens are single-use), which no agent can undo. What must
        // hold is everything after: renewals, restarts, never attesting again.
        let first = try #require(
            try await Self.startReady(config: config, directory: directory, cli: cli, listener: listener),
            "the first start did not attest"
        )
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: 10)
        // Kills land up to 3 s after exec; renewal is due 4 s after each SVID arrives.
        for round in 0..<5 {
            for _ in 0..<4 {
                try await Self.killAtRandom(config: config, directory: directory, cli: cli, window: 0.1...3)
                kills += 1
                let stored = try AgentIdentity.load(directory: directory + "/data/agent", trustDomain: trustDomain)
                #expect(stored != nil, "round \(round): no stored identity after a kill")
            }
            let agent = try #require(
                try await Self.startReady(config: config, directory: directory, cli: cli, listener: listener),
                "round \(round): no READY=1 after \(kills) kills"
            )
            _ = try await Self.verifiedRoots(socket: socket)
            agent.signal(SIGKILL)
            _ = await agent.waitForExit(timeout: 10)
            kills += 1
        }
        #expect(server.count("AttestAgent") == 1, "the agent attested \(server.count("AttestAgent")) times")
        try Self.checkSnapshots(directory + "/data")
        print(
            "kill/restart fleet: \(kills) SIGKILLs, \(server.count("RenewAgent")) renewals, \(server.count("AttestAgent")) attestation"
        )
        await server.stop()
    }
}
