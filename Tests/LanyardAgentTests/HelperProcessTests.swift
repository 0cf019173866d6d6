import Foundation
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Testing

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

/// The built `lanyard helper` binary against a real agent: exit codes of `--once`, signals through a PID file (and
/// never to a process that took a recycled PID), `cmd` supervision, and SIGKILL mid-rotation.
@Suite("lanyard helper as a process", .serialized, .timeLimit(.minutes(5)))
struct HelperProcessTests {
    func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the helper process tests need root (an entry for uid 0, setpriv, ns_last_pid)")
        return false
    }

    static func writeConfig(_ agent: TestAgent, certs: String, _ extra: String = "") throws -> String {
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let path = agent.directory + "/helper-\(UUID().uuidString.prefix(6)).toml"
        try """
        agent_address = "\(agent.socketPath)"
        cert_dir = "\(certs)"
        svid_file_name = "svid.pem"
        svid_key_file_name = "svid_key.pem"
        svid_bundle_file_name = "svid_bundle.pem"
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Moves the agent's clock until the certificate on disk changes; the new serial. (Agents here use short TTLs:
    /// time moves a sync interval at a time, and a loaded machine settles each step slowly.)
    static func rotate(_ clock: ManualClock, certs: String) async throws -> String {
        let before = try HelperTests.matchingSerial(certs)
        let time = clock.autoAdvance()
        defer { time.cancel() }
        #expect(try await HelperTests.eventually(.seconds(60)) { try HelperTests.matchingSerial(certs) != before })
        return try HelperTests.matchingSerial(certs)
    }

    static func waitForFile(_ path: String, _ limit: Duration = .seconds(20)) async throws -> Bool {
        try await HelperTests.eventually(limit) { FileManager.default.fileExists(atPath: path) }
    }

    @Test("--once: 0 with the files written; 1 with a clear message when the agent is unreachable or issues nothing")
    func onceExitCodes() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(HelperTests.rootEntry)
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: agent.directory)
        let certs = agent.directory + "/certs"
        let good = try Self.writeConfig(agent, certs: certs)
        let ok = try await cli.run(["helper", "run", "--config", good, "--once"])
        #expect(ok.status == 0, "\(ok.stderr)")
        _ = try HelperTests.matchingSerial(certs)
        #expect(try await cli.run(["helper", "check", good]).status == 0)

        let unreachable = try Self.writeConfig(agent, certs: certs, "once_timeout = \"2s\"")
        try String(contentsOfFile: unreachable, encoding: .utf8)
            .replacingOccurrences(of: agent.socketPath, with: agent.directory + "/missing.sock")
            .write(toFile: unreachable, atomically: true, encoding: .utf8)
        let down = try await cli.run(["helper", "run", "--config", unreachable, "--once"])
        #expect(down.status == 1)
        #expect(down.stderr.contains("no complete set within once_timeout"), "\(down.stderr)")

        // uid 4242 has no entry: the agent answers, but issues no identity.
        let other = agent.directory + "/other-certs"
        let nobody = try Self.writeConfig(agent, certs: other, "once_timeout = \"2s\"")
        chmod(nobody, 0o644)
        chown(other, 4242, 4242)
        let denied = try await cli.run(["helper", "run", "--config", nobody, "--once"], uid: 4242, gid: 4242)
        #expect(denied.status == 1)
        #expect(denied.stderr.contains("permissionDenied") || denied.stderr.contains("no identity"), "\(denied.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: other).isEmpty)

        let invalid = try Self.writeConfig(agent, certs: certs, "bogus = 1")
        let check = try await cli.run(["helper", "check", invalid])
        #expect(check.status == 2 && check.stderr.contains("bogus: unknown key"))
        await agent.stop()
    }

    @Test("renew_signal through a PID file reaches the server, and never a process that took its recycled PID")
    func pidFileSignal() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(HelperTests.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let directory = agent.directory
        let cli = try LanyardCLI(copyInto: directory)
        let certs = directory + "/certs"
        let pidFile = directory + "/server.pid"
        let config = try Self.writeConfig(
            agent,
            certs: certs,
            "pid_file_name = \"\(pidFile)\"\nrenew_signal = \"SIGHUP\""
        )
        // The server writes its own PID once it runs, as nginx does.
        let server = try await ChildProcess.start([
            "/bin/sh", "-c",
            "trap 'echo hup >> \(directory)/server.hups' HUP; echo $$ > \(pidFile); while :; do sleep 0.05; done",
        ])
        defer { server.stop() }
        #expect(try await Self.waitForFile(pidFile))
        let helper = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", config],
            errorPath: directory + "/helper.log"
        )
        defer { helper.stop() }
        #expect(try await Self.waitForFile(certs + "/svid.pem"))
        try await Task.sleep(for: .milliseconds(300))
        try? FileManager.default.removeItem(atPath: directory + "/server.hups")
        _ = try await Self.rotate(clock, certs: certs)
        #expect(
            try await HelperTests.eventually { HelperTests.read(directory + "/server.hups")?.contains("hup") == true }
        )

        // The server dies; a stranger is started with its PID (ns_last_pid), and the PID file still names it.
        let victim = server.pid
        server.stop()
        // The write and the fork come one right after the other in one shell, so other forks rarely slip between.
        let launcher = try await ChildProcess.run([
            "/bin/sh", "-c",
            """
            for i in $(seq 500); do
              echo \(victim - 1) > /proc/sys/kernel/ns_last_pid
              /bin/sh -c 'trap "echo hup >> \(directory)/stranger.hups" HUP; while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 &
              if [ "$!" = "\(victim)" ]; then echo found; exit 0; fi
              kill $! 2>/dev/null
            done
            echo missed
            """,
        ])
        // When the rest of the suite forks so much that another process takes the PID first (the 110-pod test
        // does), the same state is made without the race: a stranger on any PID, named by a PID file dated before
        // it started, which is exactly what the helper sees after a recycle.
        var stranger = victim
        var fallback: ChildProcess? = nil
        if !launcher.output.contains("found") {
            print("ns_last_pid missed PID \(victim) 500 times; dating the PID file back instead")
            let process = try await ChildProcess.start([
                "/bin/sh", "-c",
                "trap 'echo hup >> \(directory)/stranger.hups' HUP; while :; do sleep 0.05; done",
            ])
            try await Task.sleep(for: .milliseconds(200))
            stranger = process.pid
            try "\(stranger)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(-60)],
                ofItemAtPath: pidFile
            )
            fallback = process
        }
        defer {
            if let fallback { fallback.stop() } else { kill(victim, SIGKILL) }
        }
        _ = try await Self.rotate(clock, certs: certs)
        #expect(
            try await HelperTests.eventually {
                HelperTests.read(directory + "/helper.log")?.contains("recycled") == true
            }
        )
        try await Task.sleep(for: .milliseconds(300))
        #expect(!FileManager.default.fileExists(atPath: directory + "/stranger.hups"), "the stranger was signalled")
        #expect(kill(stranger, 0) == 0, "the stranger is still running")
        await agent.stop()
    }

    @Test(
        "cmd: the child starts once the files exist, gets renew_signal on rotation, SIGTERM is forwarded and its status is the helper's"
    )
    func commandSupervision() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(HelperTests.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let directory = agent.directory
        let cli = try LanyardCLI(copyInto: directory)
        let certs = directory + "/certs"
        let script = """
            test -f \(certs)/svid.pem && echo files >> \(directory)/child.log
            trap 'echo hup >> \(directory)/child.log' USR1
            trap 'echo term >> \(directory)/child.log; exit 7' TERM
            while :; do sleep 0.05; done
            """
        let config = try Self.writeConfig(
            agent,
            certs: certs,
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"\"\"\n\(script)\"\"\"]\nrenew_signal = \"SIGUSR1\""
        )
        let helper = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", config],
            errorPath: directory + "/helper.log"
        )
        defer { helper.stop() }
        #expect(
            try await HelperTests.eventually { HelperTests.read(directory + "/child.log")?.contains("files") == true }
        )
        _ = try await Self.rotate(clock, certs: certs)
        #expect(
            try await HelperTests.eventually { HelperTests.read(directory + "/child.log")?.contains("hup") == true }
        )
        helper.signal(SIGTERM)
        #expect(await helper.waitUntilExit(timeout: .seconds(10)) == 7)
        #expect(HelperTests.read(directory + "/child.log")?.contains("term") == true)

        // A child that exits by itself ends the helper with its status.
        let quits = try Self.writeConfig(
            agent,
            certs: certs,
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"exit 3\"]\nrenew_signal = \"SIGHUP\""
        )
        let ended = try await cli.run(["helper", "run", "--config", quits])
        #expect(ended.status == 3, "\(ended.stderr)")
        await agent.stop()
    }

    @Test("SIGKILL of the helper while it rotates leaves the previous complete set; a restart carries on")
    func killMidRotation() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(HelperTests.rootEntry, x509SVIDTTL: "10s", clock: clock)
        defer { agent.removeDirectory() }
        let directory = agent.directory
        let cli = try LanyardCLI(copyInto: directory)
        let certs = directory + "/certs"
        let config = try Self.writeConfig(agent, certs: certs)
        #expect(try await cli.run(["helper", "run", "--config", config, "--once"]).status == 0)
        // Time runs fast: the agent rotates continuously while the helper writes and is killed.
        let time = clock.autoAdvance()
        defer { time.cancel() }
        var serials: Set<String> = []
        for round in 0..<20 {
            let helper = try await ChildProcess.start(
                [cli.binary, "helper", "run", "--config", config],
                errorPath: directory + "/helper.log"
            )
            try await Task.sleep(for: .milliseconds(100 + 37 * (round % 7)))
            helper.stop(SIGKILL)
            _ = await helper.waitUntilExit()
            // Whatever the moment of the kill: every name resolves, and the certificate matches the key.
            serials.insert(try HelperTests.matchingSerial(certs))
            _ = try Certificate.chain(pemEncoded: try #require(HelperTests.read(certs + "/svid_bundle.pem")))
        }
        time.cancel()
        #expect(serials.count > 1, "the agent rotated while the helper was killed")
        #expect(try await cli.run(["helper", "run", "--config", config, "--once"]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: certs)
        #expect(names.filter { $0.hasPrefix("..v-") }.count <= 2, "\(names)")
        #expect(!names.contains { $0.contains(".tmp-") }, "\(names)")
        await agent.stop()
    }
}
