import Foundation
import LanyardTestSupport
import Testing

@testable import LanyardAgent

/// `reload_unit` over D-Bus: a private `dbus-daemon` stands in for the system bus and a small service owns
/// `org.freedesktop.systemd1` (`Fixtures/fake_systemd_bus.py`), so the helper's sd-bus call is made for real.
@Suite("lanyard helper: reload_unit through systemd's D-Bus API", .serialized, .timeLimit(.minutes(5)))
struct HelperReloadUnitTests {
    func canRun() -> Bool {
        guard getuid() == 0 else {
            print("skipped: reload_unit test needs root (an entry for uid 0)")
            return false
        }
        if let reason = PrivateSystemdBus.unavailableReason {
            print("skipped: \(reason)")
            return false
        }
        return true
    }

    @Test("a renewal asks systemd to reload the unit; an unknown unit and an absent bus are logged and retried")
    func reloadUnit() async throws {
        guard canRun() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(HelperTests.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let directory = agent.directory
        let cli = try LanyardCLI(copyInto: directory)
        let bus = try await PrivateSystemdBus.start(in: directory)
        defer { bus.stop() }
        let address = bus.address
        var environment = ProcessInfo.processInfo.environment
        environment["DBUS_SYSTEM_BUS_ADDRESS"] = address
        environment.removeValue(forKey: "NOTIFY_SOCKET")

        let certs = directory + "/certs"
        let good = try HelperProcessTests.writeConfig(agent, certs: certs, "reload_unit = \"nginx.service\"")
        let helper = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", good],
            environment: environment,
            errorPath: directory + "/helper.log"
        )
        defer { helper.stop() }
        #expect(try await HelperProcessTests.waitForFile(certs + "/svid.pem"))
        // The first set is written at start, and reloaded: one call so far.
        #expect(
            try await HelperTests.eventually {
                HelperTests.read(bus.reloadLog) == "nginx.service replace\n"
            }
        )
        _ = try await HelperProcessTests.rotate(clock, certs: certs)
        #expect(
            try await HelperTests.eventually {
                HelperTests.read(bus.reloadLog) == "nginx.service replace\nnginx.service replace\n"
            }
        )
        #expect(HelperTests.read(directory + "/helper.log")?.contains("asked systemd to reload the unit") == true)
        helper.stop(SIGTERM)
        _ = await helper.waitUntilExit()

        // An unknown unit: systemd's error is logged and the reload retried; the helper keeps running.
        let unknown = try HelperProcessTests.writeConfig(agent, certs: certs, "reload_unit = \"missing.service\"")
        let failing = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", unknown],
            environment: environment,
            errorPath: directory + "/helper-unknown.log"
        )
        defer { failing.stop() }
        #expect(
            try await HelperTests.eventually {
                let log = HelperTests.read(directory + "/helper-unknown.log") ?? ""
                return log.contains("systemd did not reload missing.service") && log.contains("attempt=2")
            }
        )
        #expect(HelperTests.read(directory + "/helper-unknown.log")?.contains("not found") == true)
        #expect(failing.isRunning)
        failing.stop(SIGTERM)

        // No bus at all: the same, never fatal.
        environment["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=\(directory)/no-bus"
        let busless = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", good],
            environment: environment,
            errorPath: directory + "/helper-nobus.log"
        )
        defer { busless.stop() }
        #expect(
            try await HelperTests.eventually {
                HelperTests.read(directory + "/helper-nobus.log")?.contains("cannot connect to the system bus") == true
            }
        )
        #expect(busless.isRunning)
        await agent.stop()
    }
}
