import Testing

@testable import Attestation

@Suite("systemd units: templates, user managers, user units")
struct SystemdUnitTests {
    @Test("an instance names its template; other units have none")
    func templates() {
        #expect(SystemdUnit(id: "worker@3.service").template! == ("worker@.service", "3"))
        #expect(SystemdUnit(id: "getty@tty1.service").template! == ("getty@.service", "tty1"))
        #expect(SystemdUnit(id: "worker@.service").template == nil)
        #expect(SystemdUnit(id: "nginx.service").template == nil)
    }

    @Test("only user@<digits>.service is a user manager")
    func userManagers() {
        #expect(SystemdUnit(id: "user@1000.service").userManagerUID == 1000)
        #expect(SystemdUnit(id: "user@0.service").userManagerUID == 0)
        #expect(SystemdUnit(id: "user-runtime-dir@1000.service").userManagerUID == nil)
        #expect(SystemdUnit(id: "user@x.service").userManagerUID == nil)
        #expect(SystemdUnit(id: "user@.service").userManagerUID == nil)
        #expect(SystemdUnit(id: "user@99999999999.service").userManagerUID == nil)
    }

    @Test("a user unit is the first unit below the manager's slices, from that manager's path only")
    func userUnits() {
        let base = "/user.slice/user-1000.slice/user@1000.service"
        #expect(SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base + "/app.slice/editor.service"]) == "editor.service")
        #expect(
            SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base + "/app.slice/app-x.slice/run-r1.scope/sub"])
                == "run-r1.scope"
        )
        #expect(SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base + "/init.scope"]) == "init.scope")
        // The manager's own cgroup, a non-unit name below it, or another user's manager: nothing.
        #expect(SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base]) == nil)
        #expect(SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base + "/app.slice/notaunit"]) == nil)
        #expect(
            SystemdUnit.userUnit(
                uid: 1000,
                cgroupPaths: ["/user.slice/user-1001.slice/user@1001.service/app.slice/editor.service"]
            ) == nil
        )
        // Control characters and spaces are not unit names.
        #expect(SystemdUnit.userUnit(uid: 1000, cgroupPaths: [base + "/bad name.service"]) == nil)
    }
}
