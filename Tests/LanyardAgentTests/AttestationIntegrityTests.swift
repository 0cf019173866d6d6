import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The attacks of `docs/security.md`, performed for real against a real agent: a local user (or a container) who
/// connects, forks, execs setuid programs, passes descriptors, lets its pid be recycled under a root process, and
/// creates cgroups wherever the kernel lets it. Each must fail to obtain anyone else's identity. (The resource
/// attacks are in ``ResourceExhaustionTests``.)
@Suite("Attestation integrity: no local process wears another's identity", .serialized, .timeLimit(.minutes(5)))
struct AttestationIntegrityTests {
    static let rootEntry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:0"]
        """

    /// Root for setpriv, cgroups and ns_last_pid; python3 for the attacker; su for the setuid program.
    static func canAttack() -> Bool {
        guard getuid() == 0 else {
            print("skipped: the attack tests need root (processes under other uids, cgroups, ns_last_pid)")
            return false
        }
        for tool in ["/usr/bin/python3", "/usr/bin/setpriv", "/usr/bin/su"] where access(tool, X_OK) != 0 {
            print("skipped: \(tool) is missing (make deps installs it)")
            return false
        }
        return true
    }

    /// The attacker's script, copied where any uid can read it, and a directory the attacker owns.
    struct Attacker {
        let script: String
        let home: String
        let uid: UInt32

        init(in directory: String, uid: UInt32) throws {
            self.uid = uid
            home = directory + "/attacker-\(uid)"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            chown(home, uid, uid)
            script = directory + "/attacker.py"
            if !FileManager.default.fileExists(atPath: script) {
                let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                    "Fixtures/attacker.py"
                ).path
                try FileManager.default.copyItem(atPath: source, toPath: script)
                chmod(script, 0o755)
            }
        }

        var proxy: String { home + "/proxy.sock" }
        var ready: String { home + "/ready" }

        /// Starts a mode of the script as the attacker's uid.
        func start(_ mode: String, _ arguments: [String]) async throws -> ChildProcess {
            try await ChildProcess.start(
                [
                    "/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups", "/usr/bin/python3",
                    script, mode,
                ] + arguments,
                outputPath: home + "/\(mode).log"
            )
        }

        func log(_ mode: String) -> String {
            (try? String(contentsOfFile: home + "/\(mode).log", encoding: .utf8)) ?? ""
        }
    }

    /// The contents of `path` once it exists (the script renames it into place whole), or nil after `timeout`.
    static func waitForFile(_ path: String, timeout: TimeInterval = 20) async throws -> String? {
        let deadline = Date() + timeout
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { return text }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// `Uid:` of `/proc/<pid>/status`: real, effective, saved, filesystem.
    static func uids(of pid: Int32) -> [UInt32] {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) }
    }

    /// What a FetchX509SVID through the attacker's connection gets: the SPIFFE IDs, or the status code.
    static func fetchThrough(_ proxy: String) async -> Result<[String], RPCError> {
        do {
            let response = try await WorkloadAPIClient(socketPath: proxy).fetchX509SVID()
            return .success(response.svids.map(\.spiffeID))
        } catch let error as RPCError {
            return .failure(error)
        } catch {
            return .failure(RPCError(code: .unknown, message: "\(error)"))
        }
    }

    @Test("a connection whose process exec'd a setuid program (su at its password prompt) is refused, never root's")
    func setuidAfterConnect() async throws {
        guard Self.canAttack() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let attacker = try Attacker(in: agent.directory, uid: 65534)
        let process = try await attacker.start(
            "setuid-after-connect",
            [agent.socketPath, attacker.proxy, attacker.ready]
        )
        defer { process.signal(SIGKILL) }
        let ready = try await Self.waitForFile(attacker.ready)
        let suPID = try #require(
            ready.flatMap { Int32($0) },
            "the attack did not start: \(attacker.log("setuid-after-connect"))"
        )
        defer { kill(suPID, SIGKILL) }
        // The attack is real: the process that connected as nobody now runs su with euid 0.
        #expect(Self.uids(of: suPID).prefix(2) == [65534, 0])
        #expect((try? String(contentsOfFile: "/proc/\(suPID)/comm", encoding: .utf8)) == "su\n")

        let outcome = await Self.fetchThrough(attacker.proxy)
        await agent.stop()
        guard case .failure(let error) = outcome else {
            Issue.record("the setuid process's connection was answered: \(outcome)")
            return
        }
        #expect(error.code == .unauthenticated, "\(error)")
        #expect(error.message.contains("credentials changed"), "\(error)")
    }

    @Test("a connection handed over by a process that exited is refused once a root process holds its pid")
    func pidHandoff() async throws {
        guard Self.canAttack() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let attacker = try Attacker(in: agent.directory, uid: 65534)
        let process = try await attacker.start("handoff-and-exit", [agent.socketPath, attacker.proxy, attacker.ready])
        defer { process.signal(SIGKILL) }
        let freed = try #require(
            try await Self.waitForFile(attacker.ready).flatMap { Int32($0) },
            "no handoff: \(attacker.log("handoff-and-exit"))"
        )
        // A root process is given the freed pid, as any process on a busy node eventually is.
        let placer = try await ChildProcess.start(
            ["/usr/bin/python3", attacker.script, "place-on-pid", "\(freed)", "60"],
            outputPath: agent.directory + "/placer.log"
        )
        defer {
            kill(freed, SIGKILL)
            placer.signal(SIGKILL)
        }
        var placed = false
        for _ in 0..<500 {
            if Self.uids(of: freed).first == 0,
                (try? String(contentsOfFile: "/proc/\(freed)/comm", encoding: .utf8)) == "sleep\n"
            {
                placed = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(placed, "no root process took pid \(freed)")
        guard placed else { return }

        let outcome = await Self.fetchThrough(attacker.proxy)
        await agent.stop()
        guard case .failure(let error) = outcome else {
            Issue.record("the handed-over connection was answered as pid \(freed)'s new owner: \(outcome)")
            return
        }
        #expect(error.code == .unauthenticated, "\(error)")
    }

    // MARK: - Cgroups chosen by the caller

    static let victimUID = "5d1b7c44-0000-4000-8000-00000000ba4c"

    static func pods(attacker: String, victim: String) -> [FakePod] {
        [
            FakePod(
                name: "api-1",
                namespace: "shop",
                uid: K8sAttestationIntegrationTests.shopPodUID,
                serviceAccount: "api",
                labels: ["app": "api"],
                containers: [.init(name: "api", image: "shop/api:1", containerID: "containerd://\(attacker)")]
            ),
            FakePod(
                name: "vault-0",
                namespace: "bank",
                uid: victimUID,
                serviceAccount: "vault",
                labels: ["app": "vault"],
                containers: [.init(name: "vault", image: "bank/vault:1", containerID: "containerd://\(victim)")]
            ),
        ]
    }

    static let victimEntry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/ns/bank/sa/vault"
        selectors = ["k8s:ns:bank", "k8s:sa:vault"]
        """

    /// Makes `path` (and its interface files) the attacker's, as systemd does for `Delegate=yes` units and a
    /// runtime does for a container with a writable cgroup namespace.
    static func delegate(_ path: String, to uid: UInt32) {
        chown(path, uid, uid)
        for file in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks"] {
            chown(path + "/" + file, uid, uid)
        }
    }

    /// Creates every missing directory of `path` under `root`, returning those created (innermost last).
    static func makeCgroup(_ path: String) -> [String] {
        var created: [String] = []
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) == 0 { created.append(current) }
        }
        return created
    }

    /// Removes cgroups the attacker made below `base` and then `created`, innermost first.
    static func removeCgroups(below base: String, _ created: [String]) {
        let below = (try? FileManager.default.subpathsOfDirectory(atPath: base)) ?? []
        for path in below.map({ base + "/" + $0 }).filter({ $0.hasSuffix("cgroup.procs") }).map({
            ($0 as NSString).deletingLastPathComponent
        }).sorted(by: { $0.count > $1.count }) {
            rmdir(path)
        }
        for path in created.reversed() { rmdir(path) }
    }

    /// Root places a shell in `start` (as systemd or a runtime would), which drops to the attacker's uid, creates
    /// `claimed` itself, moves in, and execs `lanyard api fetch x509`.
    static func fetchFromOwnCgroup(
        start: String,
        claimed: String,
        uid: UInt32,
        setup: K8sAttestationIntegrationTests.Setup
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let fetch = "\(setup.cli.binary) api fetch x509 --socket \(setup.agent.socketPath)"
        let attacker = "mkdir -p \(claimed) && echo $$ > \(claimed)/cgroup.procs && exec \(fetch)"
        let script =
            "echo $$ > \(start)/cgroup.procs && exec /usr/bin/setpriv --reuid \(uid) --regid \(uid) --clear-groups /bin/sh -c '\(attacker)'"
        return try await LanyardCLI.runTool(["/bin/sh", "-c", script])
    }

    @Test("a user's own scope named after the victim's container, or laid out like the kubelet's, gets no k8s identity")
    func userScopes() async throws {
        guard Self.canAttack(), let roots = K8sAttestationIntegrationTests.cgroupRoots() else { return }
        let attackerContainer = FakePod.randomContainerID()
        let victim = FakePod.randomContainerID()
        let setup = try await K8sAttestationIntegrationTests.start(
            pods: Self.pods(attacker: attackerContainer, victim: victim),
            more: Self.victimEntry
        )
        let user = roots.v2 + "/user.slice/user-1000.slice/user@1000.service"
        let created = Self.makeCgroup(user)
        Self.delegate(user, to: 1000)
        defer { Self.removeCgroups(below: user, created) }
        let underscored = Self.victimUID.replacingOccurrences(of: "-", with: "_")
        for claimed in [
            "\(user)/app.slice/\(victim).scope",
            "\(user)/app.slice/kubepods-besteffort-pod\(underscored).slice/cri-containerd-\(victim).scope",
            "\(user)/kubepods/burstable/pod\(Self.victimUID)/\(victim)",
        ] {
            let result = try await Self.fetchFromOwnCgroup(start: user, claimed: claimed, uid: 1000, setup: setup)
            // The process really sat in the cgroup it named (the fetch would fail to start otherwise).
            #expect(FileManager.default.fileExists(atPath: claimed + "/cgroup.procs"), "\(result.stderr)")
            #expect(!result.stdout.contains("ns/bank"), "\(claimed) was given the victim's identity")
            #expect(result.status == 1 && result.stderr.contains("no identity issued"), "\(claimed): \(result.stderr)")
        }
        await setup.stop()
    }

    @Test(
        "a container that nests the victim's pod and container below its own cgroup is still itself",
        arguments: [1, 2]
    )
    func nestedCgroups(cgroupVersion: Int) async throws {
        guard Self.canAttack(), let roots = K8sAttestationIntegrationTests.cgroupRoots() else { return }
        let attackerContainer = FakePod.randomContainerID()
        let victim = FakePod.randomContainerID()
        let setup = try await K8sAttestationIntegrationTests.start(
            pods: Self.pods(attacker: attackerContainer, victim: victim),
            more: Self.victimEntry
        )
        let container = try K8sAttestationIntegrationTests.PodCgroup(
            root: cgroupVersion == 1 ? roots.v1 : roots.v2,
            version: cgroupVersion,
            podUID: K8sAttestationIntegrationTests.shopPodUID,
            containerID: attackerContainer
        )
        Self.delegate(container.path, to: 1000)
        defer {
            Self.removeCgroups(below: container.path, [])
            container.remove()
        }
        let underscored = Self.victimUID.replacingOccurrences(of: "-", with: "_")
        let claimed =
            cgroupVersion == 1
            ? "\(container.path)/pod\(Self.victimUID)/\(victim)"
            : "\(container.path)/kubepods-besteffort-pod\(underscored).slice/cri-containerd-\(victim).scope"
        let result = try await Self.fetchFromOwnCgroup(
            start: container.path,
            claimed: claimed,
            uid: 1000,
            setup: setup
        )
        #expect(FileManager.default.fileExists(atPath: claimed + "/cgroup.procs"))
        #expect(!result.stdout.contains("ns/bank"), "the nested cgroup was given the victim's identity")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("spiffe://example.org/ns/shop/sa/api"), "attributed to its own pod")
        await setup.stop()
    }
}
