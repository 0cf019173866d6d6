import Foundation
import LanyardProto
import LanyardTestSupport
import Testing

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

/// The `lanyard` binary running as a separate process, the way systemd runs it.
final class AgentProcess: Sendable {
    let process: ChildProcess
    let logPath: String

    init(
        _ arguments: [String],
        directory: String,
        environment: [String: String] = [:],
        executable: String? = nil,
        cli existing: LanyardCLI? = nil
    ) async throws {
        let cli = try existing ?? LanyardCLI(copyInto: directory)
        logPath = directory + "/agent.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"] { env[key] = nil }
        env.merge(environment) { $1 }
        let command = executable == nil ? arguments : arguments.map { $0 == "@lanyard" ? cli.binary : $0 }
        process = try await ChildProcess.start(
            [executable ?? cli.binary] + command,
            environment: env,
            outputPath: logPath
        )
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { process.signal(signal) }

    /// Waits for exit up to `timeout` seconds, then kills.
    func waitForExit(timeout: TimeInterval) async -> Int32? {
        if let status = await process.waitUntilExit(timeout: .seconds(timeout)) { return status }
        killNow()
        return nil
    }

    /// Kills the process if it still runs and returns once it is dead (for `defer`, which cannot wait
    /// asynchronously).
    func killNow() { process.stop() }
}

func writeConfig(_ directory: String, socket: String, entries: String, health: String = "") throws -> String {
    let path = directory + "/lanyard.toml"
    let text = """
        trust_domain = "example.org"
        data_dir = "\(directory)/data"
        log_level = "info"

        [workload_api]
        socket_path = "\(socket)"

        [health]
        listen = "\(health)"

        [admin]
        socket_path = ""

        \(entries)
        """
    try writePrivateFile(text, to: path)
    return path
}

@Suite("systemd: readiness, watchdog, socket activation, reload and units", .serialized, .timeLimit(.minutes(5)))
struct SystemdTests {
    static let rootEntry = WorkloadAPIIntegrationTests.rootEntry

    func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the systemd tests need root (an entry for uid 0)")
        return false
    }

    @Test("READY=1 comes once an SVID can be fetched, WATCHDOG=1 at half the interval, STOPPING=1 on SIGTERM")
    func notifications() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let listener = try NotifyListener(path: directory + "/notify.sock")
        let socket = directory + "/api.sock"
        let config = try writeConfig(directory, socket: socket, entries: Self.rootEntry)
        let agent = try await AgentProcess(
            ["run", "--config", config],
            directory: directory,
            environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"]
        )
        let beforeReady = try #require(
            try await withDeadline(.seconds(90), "waiting for READY=1") {
                try await offPool { listener.wait(for: "READY=1", timeout: 60) }
            },
            "no READY=1; log: \(agent.log)"
        )
        // Ready means served: a fetch right now succeeds.
        let response = try await withDeadline(.seconds(30), "the first fetch after READY=1 (log: \(agent.log))") {
            try await WorkloadAPIClient(socketPath: socket).fetchX509SVID()
        }
        #expect(response.svids.first?.spiffeID == "spiffe://example.org/root-workload")
        #expect(beforeReady.dropLast().allSatisfy { !$0.contains("READY=1") })
        #expect(beforeReady.last?.contains("STATUS=serving 1 of 1 identities for example.org") == true)

        // Pings queued while the fetch ran are drained first; then a window of 1.5 s at a 400 ms watchdog (pings
        // every 200 ms) must see at least 4 and, since delays under load only bunch pings, never more than 10.
        let pings = try await withDeadline(.seconds(30), "counting watchdog pings") {
            try await offPool {
                while listener.next(timeout: 0) != nil {}
                var pings = 0
                let window = Date() + 1.5
                while Date() < window, let message = listener.next(timeout: window.timeIntervalSinceNow) {
                    if message.contains("WATCHDOG=1") { pings += 1 }
                }
                return pings
            }
        }
        #expect((4...10).contains(pings), "\(pings) watchdog pings in 1.5 s at a 400 ms watchdog")

        // An open stream (a `lanyard api watch` process) ends cleanly when the agent stops.
        let watchDirectory = directory + "/watch"
        try FileManager.default.createDirectory(atPath: watchDirectory, withIntermediateDirectories: true)
        let watcher = try await withDeadline(.seconds(30), "starting lanyard api watch") {
            try await AgentProcess(["api", "watch", "--socket", socket], directory: watchDirectory)
        }
        for _ in 0..<500 where !watcher.log.contains("received 1 svid") { try await Task.sleep(for: .milliseconds(20)) }
        #expect(watcher.log.contains("received 1 svid"), "watch log: \(watcher.log)")

        agent.signal(SIGTERM)
        #expect(try await offPool { listener.wait(for: "STOPPING=1", timeout: 10) } != nil)
        #expect(await agent.waitForExit(timeout: 15) == 0, "log: \(agent.log)")
        #expect(await watcher.waitForExit(timeout: 15) == 0, "the stream ended with an error: \(watcher.log)")
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    @Test("with socket activation the agent serves on the socket systemd passed")
    func socketActivation() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let activated = directory + "/activated.sock"
        let configured = directory + "/configured.sock"
        let config = try writeConfig(directory, socket: configured, entries: Self.rootEntry)
        let agent = try await AgentProcess(
            ["-l", activated, "@lanyard", "run", "--config", config],
            directory: directory,
            executable: "/usr/bin/systemd-socket-activate"
        )
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: activated) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let response = try await WorkloadAPIClient(socketPath: activated).fetchX509SVID()
        #expect(response.svids.count == 1)
        #expect(!FileManager.default.fileExists(atPath: configured), "the configured path must not be bound")
        #expect(agent.log.contains("using the socket passed by systemd"))
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: 15) == 0, "log: \(agent.log)")
    }

    @Test("SIGHUP applies a new entry; a broken file is refused and the running config stays")
    func reload() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let listener = try NotifyListener(path: directory + "/notify.sock")
        let config = try writeConfig(directory, socket: socket, entries: Self.rootEntry)
        let agent = try await AgentProcess(
            ["run", "--config", config],
            directory: directory,
            environment: ["NOTIFY_SOCKET": listener.path]
        )
        defer { agent.killNow() }
        #expect(try await offPool { listener.wait(for: "READY=1", timeout: 60) } != nil)
        let client = WorkloadAPIClient(socketPath: socket)
        #expect(try await client.fetchX509SVID().svids.count == 1)

        _ = try writeConfig(
            directory,
            socket: socket,
            entries: Self.rootEntry
                + "\n[[entries]]\nspiffe_id = \"spiffe://example.org/second\"\nselectors = [\"unix:uid:0\", \"unix:gid:0\"]\n"
        )
        agent.signal(SIGHUP)
        let reloaded = try await offPool { listener.wait(for: "READY=1", timeout: 30) }
        #expect(reloaded?.contains { $0.contains("RELOADING=1") } == true)
        #expect(
            try await client.fetchX509SVID().svids.map(\.spiffeID) == [
                "spiffe://example.org/root-workload", "spiffe://example.org/second",
            ]
        )

        try Data("trust_domain = \"example.org\"\n[[entries]]\nspiffe_id = 42\n".utf8).write(
            to: URL(fileURLWithPath: config)
        )
        agent.signal(SIGHUP)
        let refused = try await offPool { listener.wait(for: "READY=1", timeout: 30) }
        #expect(refused?.last?.contains("reload refused") == true)
        #expect(agent.log.contains("reload refused; the running configuration stays"))
        #expect(agent.log.contains("entries[0].spiffe_id: must be a string"))
        #expect(try await client.fetchX509SVID().svids.count == 2, "the previous configuration keeps running")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: 15) == 0)
    }

    /// A plain HTTP GET on loopback, through curl (installed with the test set-up's Debian packages).
    func get(_ url: String) async throws -> (status: Int, body: String) {
        let result = try await LanyardCLI.runTool(["/usr/bin/curl", "-s", "-w", "\n%{http_code}", url])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test(
        "/live answers, /ready flips to ready only once every identity is served, /metrics is Prometheus text that moves"
    )
    func healthAndMetrics() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let port = Int.random(in: 20_000...40_000)
        let listener = try NotifyListener(path: directory + "/notify.sock")
        // The second entry's DNS name is refused by the CA, so the cache cannot be primed yet.
        let unmintable =
            "\n[[entries]]\nspiffe_id = \"spiffe://example.org/web\"\nselectors = [\"unix:uid:0\"]\ndns_names = [\"not a name\"]\n"
        let config = try writeConfig(
            directory,
            socket: socket,
            entries: Self.rootEntry + unmintable,
            health: "127.0.0.1:\(port)"
        )
        let agent = try await AgentProcess(
            ["run", "--config", config],
            directory: directory,
            environment: ["NOTIFY_SOCKET": listener.path]
        )
        defer { agent.killNow() }
        #expect(try await offPool { listener.wait(for: "READY=1", timeout: 60) } != nil)
        let base = "http://127.0.0.1:\(port)"
        var live = try await get(base + "/live")
        for _ in 0..<100 where live.status != 200 {
            try await Task.sleep(for: .milliseconds(50))
            live = try await get(base + "/live")
        }
        #expect(live.status == 200)
        let notReady = try await get(base + "/ready")
        #expect(notReady.status == 503)
        #expect(notReady.body.contains("not primed"), "\(notReady.body)")

        _ = try writeConfig(directory, socket: socket, entries: Self.rootEntry, health: "127.0.0.1:\(port)")
        agent.signal(SIGHUP)
        #expect(try await offPool { listener.wait(for: "READY=1", timeout: 30) } != nil)
        let ready = try await get(base + "/ready")
        #expect(ready.status == 200, "\(ready.body)")

        func fetchCount(_ text: String) -> Double {
            text.split(separator: "\n")
                .filter { $0.hasPrefix("lanyard_rpc_requests_total{") && $0.contains("FetchX509SVID") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
                .reduce(0, +)
        }
        let before = try await get(base + "/metrics")
        #expect(before.status == 200)
        for line in before.body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(
                parts.count == 2 && Double(parts[1]) != nil && parts[0].first?.isLetter == true,
                "not exposition format: \(line)"
            )
        }
        #expect(before.body.contains("lanyard_cache_svids"))
        #expect(before.body.contains("lanyard_upstream_sync_total"))
        _ = try await WorkloadAPIClient(socketPath: socket).fetchX509SVID()
        _ = try await WorkloadAPIClient(socketPath: socket).fetchX509SVID()
        // A stream is counted when it ends, just after the client hangs up.
        var after = try await get(base + "/metrics")
        for _ in 0..<40 where fetchCount(after.body) < fetchCount(before.body) + 2 {
            try await Task.sleep(for: .milliseconds(50))
            after = try await get(base + "/metrics")
        }
        #expect(fetchCount(after.body) >= fetchCount(before.body) + 2, "\(after.body)")
        #expect(after.body.contains("lanyard_attestation_duration_seconds"))
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: 15) == 0)
    }

    @Test("systemd-analyze verify accepts the unit files, the helper's template as an instance")
    func unitsVerify() async throws {
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cli = try LanyardCLI(copyInto: directory)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../systemd")
            .standardized.path
        // The helper's template is verified as an instance.
        let units = [
            "lanyard.service": "lanyard.service", "lanyard.socket": "lanyard.socket",
            "lanyard-helper@.service": "lanyard-helper@nginx.service",
        ]
        for (unit, name) in units {
            let text = try String(contentsOfFile: root + "/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/lanyard", with: cli.binary)
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        let result = try await LanyardCLI.runTool(
            ["/usr/bin/systemd-analyze", "verify"] + units.values.sorted().map { directory + "/" + $0 }
        )
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { $0.contains("lanyard.") }
        #expect(complaints.isEmpty, "\(complaints)")
    }
}
