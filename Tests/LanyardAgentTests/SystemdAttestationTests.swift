import Attestation
import Foundation
import LanyardTestSupport
import SPIFFE
import Testing

/// The systemd attestor against a fake systemd on a private bus that, like systemd, finds a process's unit from its
/// cgroup: real cgroups in the unified hierarchy, real processes moved into them, real sd-bus calls.
@Suite("systemd attestation over D-Bus", .serialized, .timeLimit(.minutes(5)))
struct SystemdAttestationTests {
    static func setUp() -> String? {
        if let reason = PrivateSystemdBus.unavailableReason {
            print("skipped: \(reason)")
            return nil
        }
        return cgroupRoot()
    }

    /// The unified hierarchy's root, where systemd and the runtimes place processes; nil (with the reason printed)
    /// without root.
    static func cgroupRoot() -> String? {
        K8sAttestationIntegrationTests.cgroupRoots()?.v2
    }

    static func selectors(_ attestor: SystemdAttestor, _ unit: CgroupProcess) async throws -> Set<String> {
        let process = WorkloadProcess(pid: unit.process.pid, uid: 0, gid: 0)
        return Set(try await attestor.attest(process).map(\.description))
    }

    @Test("system units, template instances and user units get what systemd says; no unit gives nothing")
    func selectorsFromTheBus() async throws {
        guard let root = Self.setUp() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bus = try await PrivateSystemdBus.start(in: directory)
        defer { bus.stop() }
        let attestor = SystemdAttestor(config: .init(busAddress: bus.address, timeout: .seconds(10)))
        let tag = "lanyard-test-\(getpid())"

        let web = try await CgroupProcess.start(root: root, path: "/system.slice/\(tag)-web.service")
        #expect(
            try await Self.selectors(attestor, web) == [
                "systemd:id:\(tag)-web.service",
                "systemd:fragment_path:/etc/systemd/system/\(tag)-web.service",
                "systemd:slice:system.slice",
            ]
        )
        await web.stop()

        let worker = try await CgroupProcess.start(root: root, path: "/system.slice/\(tag)-worker@3.service")
        #expect(
            try await Self.selectors(attestor, worker) == [
                "systemd:id:\(tag)-worker@3.service",
                "systemd:fragment_path:/etc/systemd/system/\(tag)-worker@.service",
                "systemd:slice:system.slice",
                "systemd:template:\(tag)-worker@.service",
                "systemd:instance:3",
            ]
        )
        await worker.stop()

        // Below a user's manager the user arranges the cgroups: only a user unit, tagged with the uid, never an id.
        let editor = try await CgroupProcess.start(
            root: root,
            path: "/user.slice/user-1007.slice/user@1007.service/app.slice/\(tag)-editor.service"
        )
        #expect(try await Self.selectors(attestor, editor) == ["systemd:user_unit:1007:\(tag)-editor.service"])
        await editor.stop()

        // Not in a unit (a cgroup systemd did not create): no systemd selectors, and no error.
        let loose = try await CgroupProcess.start(root: root, path: "/\(tag)-loose/\(tag)-fake.service")
        #expect(try await Self.selectors(attestor, loose) == [])
        await loose.stop()
    }

    @Test("the agent serves a unit's entry to the unit's process, and fails closed when the bus is gone")
    func agentEndToEnd() async throws {
        guard let root = Self.setUp() else { return }
        let directory = TestAgent.makeDirectory()
        let bus = try await PrivateSystemdBus.start(in: directory)
        defer { bus.stop() }
        let tag = "lanyard-test-\(getpid())"
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            """
            [attestors.systemd]
            enabled = true
            bus_address = "\(bus.address)"

            [[entries]]
            spiffe_id = "spiffe://example.org/worker"
            selectors = ["systemd:template:\(tag)-worker@.service", "systemd:slice:system.slice"]
            """,
            directory: directory,
            logs: logs
        )
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: directory)
        let fetch = "\(cli.binary) api fetch x509 --socket \(agent.socketPath)"

        let (cgroup, created) = CgroupProcess.make(root: root, path: "/system.slice/\(tag)-worker@7.service")
        defer { CgroupProcess.remove(created) }
        let granted = try await LanyardCLI.runTool([
            "/bin/sh", "-c", "echo $$ > \(cgroup)/cgroup.procs && exec \(fetch)",
        ])
        #expect(granted.status == 0, "\(granted.stderr)")
        #expect(granted.stdout.contains("spiffe://example.org/worker"))

        // Outside the unit: no entry.
        let outside = try await LanyardCLI.runTool(["/bin/sh", "-c", "exec \(fetch)"])
        #expect(outside.status != 0)
        #expect(!outside.stdout.contains("spiffe://example.org/worker"))

        // The bus goes away: the unit's process is refused, and the log says why.
        bus.stop()
        let refused = try await LanyardCLI.runTool([
            "/bin/sh", "-c", "echo $$ > \(cgroup)/cgroup.procs && exec \(fetch)",
        ])
        #expect(refused.status != 0)
        #expect(!refused.stdout.contains("spiffe://example.org/worker"))
        #expect(logs.all.contains { $0.contains("systemd did not say which unit process") }, "\(logs.all)")
        await agent.stop()
    }

    @Test("an unreachable bus is an error naming it, not an empty answer")
    func unreachableBus() async throws {
        let attestor = SystemdAttestor(config: .init(busAddress: "unix:path=/nonexistent/lanyard-bus"))
        let process = WorkloadProcess(pid: getpid(), uid: getuid(), gid: getgid())
        await #expect(throws: AttestationError.self) { try await attestor.attest(process) }
        do {
            _ = try await attestor.attest(process)
        } catch let error as AttestationError {
            #expect(error.code == .systemdUnavailable)
            #expect("\(error)".contains("cannot connect to the system bus"))
        }
    }
}
