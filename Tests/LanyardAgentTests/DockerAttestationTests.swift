import Attestation
import Foundation
import LanyardTestSupport
import SPIFFE
import Testing

/// The docker attestor with real cgroups, real processes moved into them, and the fake Engine API on real Unix
/// sockets (standing in for Docker, rootful Podman, and a user's rootless Podman).
@Suite("Docker and Podman attestation through the Engine API", .serialized, .timeLimit(.minutes(5)))
struct DockerAttestationTests {
    static let web = FakeContainer(
        image: "registry.example/web:1.4",
        labels: ["app": "web", "tier": "front"],
        environment: ["MODE=prod"]
    )

    static func selectors(_ attestor: DockerAttestor, _ process: CgroupProcess) async throws -> Set<String> {
        let caller = WorkloadProcess(pid: process.process.pid, uid: 0, gid: 0)
        return Set(try await attestor.attest(caller).map(\.description))
    }

    static func expected(_ container: FakeContainer, prefix: String = "") -> Set<String> {
        Set(
            container.labels.map { "docker:\(prefix)label:\($0.key):\($0.value)" }
                + container.environment.map { "docker:\(prefix)env:\($0)" }
                + [
                    "docker:\(prefix)image_id:\(container.image)",
                    "docker:\(prefix)image_config_digest:\(container.imageID)",
                ]
        )
    }

    @Test("Docker and rootful Podman containers get their selectors; look-alikes get none")
    func rootful() async throws {
        guard let root = SystemdAttestationTests.cgroupRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pod = FakeContainer(image: "quay.io/shop/db:16", labels: ["app": "db"])
        let docker = try await FakeDockerEngine.start(socketPath: directory + "/docker.sock", containers: [Self.web])
        let podman = try await FakeDockerEngine.start(
            socketPath: directory + "/podman.sock",
            containers: [pod],
            chunked: true
        )
        defer {
            Task {
                await docker.stop(); await podman.stop()
            }
        }
        let attestor = DockerAttestor(
            config: .init(
                dockerSocketPath: docker.socketPath,
                podmanSocketPath: podman.socketPath,
                apiVersion: "1.41"
            )
        )

        let dockerProcess = try await CgroupProcess.start(root: root, path: "/system.slice/docker-\(Self.web.id).scope")
        #expect(try await Self.selectors(attestor, dockerProcess) == Self.expected(Self.web))
        #expect(docker.requests == ["/v1.41/containers/\(Self.web.id)/json"])
        await dockerProcess.stop()

        let podmanProcess = try await CgroupProcess.start(
            root: root,
            path: "/machine.slice/libpod-\(pod.id).scope/container"
        )
        #expect(try await Self.selectors(attestor, podmanProcess) == Self.expected(pod))
        await podmanProcess.stop()

        // The web container's ID in a cgroup the runtime would never create: no selectors, and nobody is asked.
        let lookAlike = try await CgroupProcess.start(
            root: root,
            path: "/lanyard-test-\(getpid())/docker-\(Self.web.id).scope"
        )
        #expect(try await Self.selectors(attestor, lookAlike) == [])
        #expect(docker.requests.count == 1)
        await lookAlike.stop()

        // In the runtime's layout but unknown to the runtime: refused, not guessed.
        let unknown = try await CgroupProcess.start(
            root: root,
            path: "/system.slice/docker-\(FakeContainer.randomID()).scope"
        )
        await #expect(throws: AttestationError.self) { try await Self.selectors(attestor, unknown) }
        await unknown.stop()
    }

    @Test("rootless Podman answers through the user's own socket, with uid-tagged selectors; other owners are refused")
    func rootless() async throws {
        guard let root = SystemdAttestationTests.cgroupRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/run/1008", withIntermediateDirectories: true)
        let own = FakeContainer(image: "docker.io/library/redis:7", labels: ["app": "web"])
        let users = try await FakeDockerEngine.start(socketPath: directory + "/run/1008/podman.sock", containers: [own])
        let system = try await FakeDockerEngine.start(socketPath: directory + "/podman.sock", containers: [own])
        defer {
            Task {
                await users.stop(); await system.stop()
            }
        }
        chown(users.socketPath, 1008, 1008)
        let attestor = DockerAttestor(
            config: .init(dockerSocketPath: nil, podmanSocketPathTemplate: directory + "/run/%d/podman.sock")
        )
        let process = try await CgroupProcess.start(
            root: root,
            path: "/user.slice/user-1008.slice/user@1008.service/user.slice/libpod-\(own.id).scope"
        )
        defer { Task { await process.stop() } }
        #expect(try await Self.selectors(attestor, process) == Self.expected(own, prefix: "user:1008:"))

        // The socket belongs to someone else: refused before connecting.
        chown(users.socketPath, 1001, 1001)
        await #expect(throws: AttestationError.self) { try await Self.selectors(attestor, process) }
        // A symlink the user placed to the system's socket: refused (never followed).
        try FileManager.default.moveItem(atPath: users.socketPath, toPath: directory + "/run/1008/real.sock")
        try FileManager.default.createSymbolicLink(atPath: users.socketPath, withDestinationPath: system.socketPath)
        lchown(users.socketPath, 1008, 1008)
        do {
            _ = try await Self.selectors(attestor, process)
            Issue.record("a symlinked socket was followed")
        } catch {
            #expect("\(error)".contains("is not a socket"), "\(error)")
        }
        #expect(system.requests.isEmpty)
    }

    @Test("an engine that accepts and never answers times out within the bound")
    func hangingEngine() async throws {
        guard let root = SystemdAttestationTests.cgroupRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A listening socket nobody accepts on: connect succeeds (backlog), the answer never comes.
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = directory + "/docker.sock"
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            bytes.copyBytes(from: Array(path.utf8).prefix(bytes.count - 1))
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0 && listen(listener, 8) == 0)
        let attestor = DockerAttestor(config: .init(dockerSocketPath: path, timeout: .milliseconds(500)))
        let process = try await CgroupProcess.start(root: root, path: "/docker/\(Self.web.id)")
        defer { Task { await process.stop() } }
        let started = ContinuousClock.now
        do {
            _ = try await Self.selectors(attestor, process)
            Issue.record("a silent engine gave selectors")
        } catch let error as AttestationError {
            #expect(error.code == .timedOut, "\(error)")
        }
        // Generous: the bound is 0.5 s; this only catches an attestor that waits without limit.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test("the agent serves a container's entry; a rootless container with the same label gets nothing")
    func agentEndToEnd() async throws {
        guard let root = SystemdAttestationTests.cgroupRoot() else { return }
        let directory = TestAgent.makeDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/run/1008", withIntermediateDirectories: true)
        let impostor = FakeContainer(image: Self.web.image, labels: Self.web.labels)
        let docker = try await FakeDockerEngine.start(socketPath: directory + "/docker.sock", containers: [Self.web])
        let users = try await FakeDockerEngine.start(
            socketPath: directory + "/run/1008/podman.sock",
            containers: [impostor]
        )
        chown(users.socketPath, 1008, 1008)
        defer {
            Task {
                await docker.stop(); await users.stop()
            }
        }
        let agent = try await TestAgent.start(
            """
            [attestors.docker]
            enabled = true
            docker_socket_path = "unix://\(docker.socketPath)"
            podman_socket_path_template = "unix://\(directory)/run/%d/podman.sock"

            [[entries]]
            spiffe_id = "spiffe://example.org/web"
            selectors = ["docker:label:app:web", "docker:image_id:\(Self.web.image)"]
            """,
            directory: directory
        )
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: directory)
        let fetch = "\(cli.binary) api fetch x509 --socket \(agent.socketPath)"

        let (cgroup, created) = CgroupProcess.make(root: root, path: "/system.slice/docker-\(Self.web.id).scope")
        defer { CgroupProcess.remove(created) }
        let granted = try await LanyardCLI.runTool([
            "/bin/sh", "-c", "echo $$ > \(cgroup)/cgroup.procs && exec \(fetch)",
        ])
        #expect(granted.status == 0, "\(granted.stderr)")
        #expect(granted.stdout.contains("spiffe://example.org/web"))

        let (rootless, createdRootless) = CgroupProcess.make(
            root: root,
            path: "/user.slice/user-1008.slice/user@1008.service/user.slice/libpod-\(impostor.id).scope"
        )
        defer { CgroupProcess.remove(createdRootless) }
        let denied = try await LanyardCLI.runTool([
            "/bin/sh", "-c", "echo $$ > \(rootless)/cgroup.procs && exec \(fetch)",
        ])
        #expect(denied.status != 0)
        #expect(!denied.stdout.contains("spiffe://example.org/web"))
        #expect(users.requests == ["/containers/\(impostor.id)/json"])
        await agent.stop()
    }
}
