import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The resource attacks of `docs/security.md`, against the real `lanyard` binary in its own process so its memory
/// and descriptors are its own: one caller growing the agent without bound, several uids together exhausting its
/// descriptors, and an executable built to be expensive to hash.
@Suite("Resource exhaustion: one caller cannot grow the agent or starve others", .serialized, .timeLimit(.minutes(5)))
struct ResourceExhaustionTests {
    static let rootEntry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:0"]
        """

    static func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the resource tests need root (an entry for uid 0, callers under other uids, prlimit)")
        return false
    }

    /// py-spiffe, for clients that must not run on this process's threads.
    static func hasPySpiffe() async throws -> Bool {
        let probe = try await LanyardCLI.runTool(["/usr/bin/env", "python3", "-c", "import spiffe"])
        if probe.status != 0 { print("skipped: py-spiffe is not installed (make deps installs it)") }
        return probe.status == 0
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    static func memory(_ field: String, of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    }

    /// The real agent, started (optionally through `prlimit`) and ready.
    static func startAgent(
        _ directory: String,
        config: String,
        prlimit: String? = nil
    ) async throws -> AgentProcess {
        let listener = try NotifyListener(path: directory + "/notify-\(UUID().uuidString.prefix(6)).sock")
        let cli = try LanyardCLI(copyInto: directory)
        let arguments = ["run", "--config", config]
        let agent = try await AgentProcess(
            prlimit.map { ["--nofile=\($0)", "@lanyard"] + arguments } ?? arguments,
            directory: directory,
            environment: ["NOTIFY_SOCKET": listener.path],
            executable: prlimit == nil ? nil : "/usr/bin/prlimit",
            cli: cli
        )
        guard try await offPool({ listener.wait(for: "READY=1", timeout: 30) }) != nil else {
            agent.killNow()
            throw TestAgentError("no READY=1; the agent's log:\n\(agent.log)")
        }
        return agent
    }

    @Test("40,000 distinct audiences (the most a request may carry, each as long as allowed): RSS stays bounded")
    func distinctAudiences() async throws {
        guard Self.isRoot(), try await Self.hasPySpiffe() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let config = try writeConfig(directory, socket: socket, entries: Self.rootEntry)
        let agent = try await Self.startAgent(directory, config: config)
        defer { agent.killNow() }
        let pid = agent.process.pid
        let client = WorkloadAPIClient(socketPath: socket)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Fixtures/jwt_flood.py"
        ).path
        /// `calls` requests numbered from `start`, each with 32 new audiences of about 1 KiB (a ~40 KB token to mint
        /// and cache), from a py-spiffe client in its own process.
        func flood(from start: Int, calls: Int) async throws {
            let result = try await LanyardCLI.runTool([
                "/usr/bin/env", "python3", script, socket, "\(start)", "\(calls)",
            ])
            guard result.status == 0, Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == calls else {
                throw TestAgentError("the flood stopped: \(result.stdout) \(result.stderr.suffix(1000))")
            }
        }
        // Past the cache's byte bound (4 MiB, ~100 such tokens), so what follows is steady state: evictions only.
        try await flood(from: 0, calls: 250)
        let warm = Self.memory("VmRSS", of: pid)
        try await flood(from: 250, calls: 1_000)
        let end = Self.memory("VmRSS", of: pid)
        print(
            "40,000 distinct 1 KiB audiences in 1,250 calls: agent RSS \(warm / 1024) MiB after 250 calls, \(end / 1024) MiB after 1,250"
        )
        // Without the bound every token stayed: ~40 MB of tokens and as much again in their parsed claims.
        #expect(end - warm < 16 * 1024, "RSS grew by \((end - warm) / 1024) MiB over 32,000 more audiences")
        // Over the per-request bounds: refused before anything is signed.
        await #expect(throws: RPCError.self) {
            try await client.fetchJWTSVID(audience: (0..<33).map { "a\($0)" })
        }
        await #expect(throws: RPCError.self) {
            try await client.fetchJWTSVID(audience: [String(repeating: "x", count: 1025)])
        }
        #expect(try await client.fetchJWTSVID(audience: ["https://audience.example"]).svids.count == 1)
    }

    /// Three uids each open `perCaller` connections (within their own limit) and hold them; returns how many each
    /// connected and whether root was served while they held them.
    static func holdConnections(
        agent: AgentProcess,
        directory: String,
        socket: String,
        perCaller: Int
    ) async throws -> (held: [Int], rootServed: Bool, holders: [ChildProcess]) {
        var holders: [ChildProcess] = []
        var readyFiles: [String] = []
        for uid in [2001, 2002, 2003] as [UInt32] {
            let attacker = try AttestationIntegrityTests.Attacker(in: directory, uid: uid)
            holders.append(try await attacker.start("hold-connections", [socket, "\(perCaller)", attacker.ready]))
            readyFiles.append(attacker.ready)
        }
        var held: [Int] = []
        for file in readyFiles {
            held.append(Int(try await AttestationIntegrityTests.waitForFile(file, timeout: 60) ?? "") ?? -1)
        }
        let response = try? await WorkloadAPIClient(socketPath: socket).fetchX509SVID()
        return (held, response?.svids.first?.spiffeID == "spiffe://example.org/root-workload", holders)
    }

    @Test("1,200 idle connections from three uids under a 1,024-descriptor limit: root is still served")
    func descriptorExhaustion() async throws {
        guard Self.isRoot(), AttestationIntegrityTests.canAttack() else { return }
        // A soft limit of 1,024 the agent cannot raise (hard 1,024 too): all callers together stop below it.
        do {
            let directory = TestAgent.makeDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let socket = directory + "/api.sock"
            let config = try writeConfig(directory, socket: socket, entries: Self.rootEntry)
            let agent = try await Self.startAgent(directory, config: config, prlimit: "1024:1024")
            defer { agent.killNow() }
            let (held, rootServed, holders) = try await Self.holdConnections(
                agent: agent,
                directory: directory,
                socket: socket,
                perCaller: 400
            )
            defer { holders.forEach { $0.signal(SIGKILL) } }
            let accepted = RawSocketClient.agentSockets(in: directory) - 1
            print(
                "soft=hard=1024: connected \(held), the agent holds \(accepted) connections, root served: \(rootServed)"
            )
            #expect(rootServed, "root could not be served: \(agent.log.suffix(2000))")
            #expect(accepted <= (1024 - 128) / 2, "the agent holds \(accepted) connections, past its cap")
            #expect(held.allSatisfy { $0 == 400 }, "a caller blocked: the agent stopped accepting")
            #expect(agent.log.contains("all callers together hold the connection limit"))
        }
        // A soft limit of 1,024 below a hard one: the agent raises it and holds every connection.
        do {
            let directory = TestAgent.makeDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let socket = directory + "/api.sock"
            let config = try writeConfig(directory, socket: socket, entries: Self.rootEntry)
            let agent = try await Self.startAgent(directory, config: config, prlimit: "1024:8192")
            defer { agent.killNow() }
            let (held, rootServed, holders) = try await Self.holdConnections(
                agent: agent,
                directory: directory,
                socket: socket,
                perCaller: 400
            )
            defer { holders.forEach { $0.signal(SIGKILL) } }
            var accepted = 0
            for _ in 0..<100 {
                accepted = RawSocketClient.agentSockets(in: directory) - 1
                if accepted >= 1200 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let descriptors =
                (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.process.pid)/fd").count) ?? 0
            print(
                "soft 1024, hard 8192: connected \(held), the agent holds \(accepted) connections and \(descriptors) descriptors, root served: \(rootServed)"
            )
            #expect(held == [400, 400, 400])
            #expect(accepted >= 1200, "the agent did not raise its descriptor limit")
            #expect(rootServed)
        }
    }

    @Test("a sparse multi-GiB executable: refused by size by default, hashed in constant memory when allowed")
    func sparseExecutable() async throws {
        guard Self.isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let cli = try LanyardCLI(copyInto: directory)
        // The client itself, grown to 2 GiB of holes: still a valid program, and the caller the agent must hash.
        let huge = directory + "/huge-lanyard"
        try FileManager.default.copyItem(atPath: cli.binary, toPath: huge)
        #expect(truncate(huge, 2 << 30) == 0)
        let entry = """
            [attestors.unix]
            discover_workload_path = true
            LIMIT

            [[entries]]
            spiffe_id = "spiffe://example.org/huge"
            selectors = ["unix:uid:0", "unix:path:\(huge)"]
            """
        for (limit, allowed) in [("", false), ("workload_size_limit = 4294967296", true)] {
            let config = try writeConfig(
                directory,
                socket: socket,
                entries: entry.replacingOccurrences(of: "LIMIT", with: limit)
            )
            let agent = try await Self.startAgent(directory, config: config)
            defer { agent.killNow() }
            let pid = agent.process.pid
            let peakBefore = Self.memory("VmHWM", of: pid)
            let result = try await LanyardCLI.runTool([huge, "api", "fetch", "x509", "--socket", socket])
            let peakAfter = Self.memory("VmHWM", of: pid)
            print(
                "2 GiB executable, \(allowed ? "allowed" : "default limit"): peak RSS \(peakBefore / 1024) -> \(peakAfter / 1024) MiB"
            )
            #expect(
                peakAfter - peakBefore < 16 * 1024,
                "hashing grew the agent's peak by \((peakAfter - peakBefore) / 1024) MiB"
            )
            if allowed {
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.contains("spiffe://example.org/huge"))
                // The digest is cached by the file's identity: a second caller is answered without reading it.
                let second = try await LanyardCLI.runTool([huge, "api", "fetch", "x509", "--socket", socket])
                #expect(second.status == 0)
            } else {
                #expect(result.status == 1 && result.stderr.contains("unavailable"), "\(result.stderr)")
                #expect(agent.log.contains("over workload_size_limit"), "\(agent.log.suffix(2000))")
            }
            agent.signal(SIGTERM)
            _ = await agent.waitForExit(timeout: 15)
        }
    }
}
