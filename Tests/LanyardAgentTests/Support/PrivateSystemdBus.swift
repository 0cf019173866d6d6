import Foundation
import LanyardTestSupport

/// A private `dbus-daemon` with a fake `org.freedesktop.systemd1` on it (`Fixtures/fake_systemd_bus.py`), so sd-bus
/// calls to systemd are made for real where no system bus runs (CI containers).
struct PrivateSystemdBus {
    /// The address to give sd-bus: `unix:path=<directory>/bus`.
    let address: String
    /// Where the fake records each ReloadUnit call, "<unit> <mode>" per line.
    let reloadLog: String
    private let daemon: ChildProcess
    private let systemd: ChildProcess

    /// Why the bus cannot run here, or nil.
    static var unavailableReason: String? {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/dbus-daemon")
            ? nil : "dbus-daemon is not installed (make deps installs it)"
    }

    /// Starts the bus in `directory`; `reloadableUnits` are the units ReloadUnit knows.
    static func start(
        in directory: String,
        reloadableUnits: [String] = ["nginx.service"]
    ) async throws
        -> PrivateSystemdBus
    {
        try """
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
          "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig>
          <type>custom</type>
          <listen>unix:path=\(directory)/bus</listen>
          <auth>EXTERNAL</auth>
          <policy context="default">
            <allow user="*"/>
            <allow own="*"/>
            <allow send_destination="*"/>
            <allow receive_sender="*"/>
          </policy>
        </busconfig>
        """.write(toFile: directory + "/bus.conf", atomically: true, encoding: .utf8)
        let daemon = try await ChildProcess.start(
            ["/usr/bin/dbus-daemon", "--config-file=\(directory)/bus.conf", "--nofork"],
            errorPath: directory + "/bus.log"
        )
        guard try await HelperProcessTests.waitForFile(directory + "/bus") else {
            daemon.stop()
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: directory + "/bus"])
        }
        let address = "unix:path=\(directory)/bus"
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fake_systemd_bus.py").path
        let reloadLog = directory + "/reloads.log"
        let systemd = try await ChildProcess.start(
            ["/usr/bin/env", "python3", fixture, address, reloadLog, reloadableUnits.joined(separator: ",")],
            outputPath: directory + "/fake-systemd.out"
        )
        let ready = try await HelperTests.eventually {
            HelperTests.read(directory + "/fake-systemd.out")?.contains("ready") == true
        }
        guard ready else {
            systemd.stop()
            daemon.stop()
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: directory + "/fake-systemd.out"])
        }
        return PrivateSystemdBus(address: address, reloadLog: reloadLog, daemon: daemon, systemd: systemd)
    }

    func stop() {
        systemd.stop()
        daemon.stop()
    }
}
