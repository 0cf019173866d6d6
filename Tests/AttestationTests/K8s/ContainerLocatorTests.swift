import Foundation
import SPIFFE
import Testing

@testable import Attestation

@Suite("Container locator: cgroup lines of every runtime and driver")
struct ContainerLocatorTests {
    static let cid = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961"
    static let hostCID = "e1f6f9d1a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c"
    static let uid = "2c48913c-b29f-11e7-9350-020968147796"
    static let underscored = "2c48913c_b29f_11e7_9350_020968147796"

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let cgroup: String
        let podUID: String?
        let containerID: String?
        var testDescription: String { name }
    }

    static let user = "/user.slice/user-1000.slice/user@1000.service"
    static let victimUID = "7a0c1e2f-0000-4000-8000-000000000001"
    static let victimUnderscored = "7a0c1e2f_0000_4000_8000_000000000001"
    static let victimCID = "3f" + String(repeating: "ab", count: 31)

    static let cases: [Case] = [
        Case(
            name: "cgroupfs v1, burstable (docker or containerd)",
            cgroup: "11:hugetlb:/kubepods/burstable/pod\(uid)/\(cid)\n10:memory:/kubepods/burstable/pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroupfs v1, besteffort",
            cgroup: "4:pids:/kubepods/besteffort/pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroupfs v1, guaranteed (no QoS level)",
            cgroup: "4:pids:/kubepods/pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroupfs, CRI-O names its container crio-<id>",
            cgroup: "0::/kubepods/burstable/pod\(uid)/crio-\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroupfs below kind's --cgroup-root /kubelet",
            cgroup: "0::/kubelet/kubepods/besteffort/pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "systemd driver v1, docker",
            cgroup:
                "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(underscored).slice/docker-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "systemd driver, CRI-O",
            cgroup:
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(underscored).slice/crio-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "systemd driver, guaranteed pod (no QoS slice)",
            cgroup: "0::/kubepods.slice/kubepods-pod\(underscored).slice/cri-containerd-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "CRI-O conmon is not the container",
            cgroup:
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(underscored).slice/crio-conmon-\(cid).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "systemd driver v2, containerd",
            cgroup:
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(underscored).slice/cri-containerd-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "kind's systemd layout below kubelet.slice",
            cgroup:
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod\(underscored).slice/cri-containerd-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "hybrid v1 + v2 lines agreeing",
            cgroup: """
                12:pids:/kubepods/burstable/pod\(uid)/\(cid)
                1:name=systemd:/kubepods/burstable/pod\(uid)/\(cid)
                0::/kubepods/burstable/pod\(uid)/\(cid)

                """,
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "a container's own nested cgroups are attributed to the container",
            cgroup: "0::/kubepods/burstable/pod\(uid)/\(cid)/init.scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroup namespace, path from the QoS level",
            cgroup: "0::/../../../besteffort/pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroup namespace, path from the pod level",
            cgroup: "0::/../../pod\(uid)/\(cid)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroup namespace, systemd pod slice",
            cgroup: "0::/../../kubepods-burstable-pod\(underscored).slice/cri-containerd-\(cid).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "cgroup namespace, CRI-O without a pod level is not looked up",
            cgroup: "0::/../crio-\(cid).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "plain docker container (no pod)",
            cgroup: "0::/system.slice/docker-\(cid).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "containerd's colon form is a runtime setting, not a cgroup path",
            cgroup: "0::/kubepods-besteffort-pod\(underscored).slice:cri-containerd:\(cid)\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "host process under systemd",
            cgroup: "0::/user.slice/user-1000.slice/session-3.scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "root cgroup",
            cgroup: "0::/\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "a pod level without a container",
            cgroup: "0::/kubepods/burstable/pod\(uid)\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "63 hex digits is not an ID",
            cgroup: "0::/kubepods/pod\(uid)/\(cid.dropLast())\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "65 hex digits is not an ID",
            cgroup: "0::/kubepods/pod\(uid)/\(cid)a\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "pod word glued to other letters is not a pod",
            cgroup: "0::/kubepods/xpod\(uid)/\(cid)\n",
            podUID: nil,
            containerID: nil
        ),
        // Attacks: names the caller chose, in places it can create cgroups.
        Case(
            name: "attack: a user scope named after the victim's container",
            cgroup: "0::\(user)/app.slice/\(victimCID).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a user's delegated subtree laid out like the kubelet's",
            cgroup: "0::\(user)/kubepods/burstable/pod\(victimUID)/\(victimCID)\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a user's delegated subtree with systemd-style pod slices",
            cgroup:
                "0::\(user)/app.slice/kubepods-besteffort-pod\(victimUnderscored).slice/cri-containerd-\(victimCID).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a container nests the victim's pod below its own cgroup (cgroupfs)",
            cgroup: "0::/kubepods/burstable/pod\(uid)/\(cid)/pod\(victimUID)/\(victimCID)\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "attack: a container nests the victim's pod below its own cgroup (systemd)",
            cgroup:
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(underscored).slice/cri-containerd-\(cid).scope/kubepods-besteffort-pod\(victimUnderscored).slice/cri-containerd-\(victimCID).scope\n",
            podUID: uid,
            containerID: cid
        ),
        Case(
            name: "attack: a pod slice that does not extend its QoS parent's name",
            cgroup:
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod\(victimUnderscored).slice/cri-containerd-\(victimCID).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a pod slice at the top of the hierarchy",
            cgroup: "0::/kubepods-besteffort-pod\(victimUnderscored).slice/cri-containerd-\(victimCID).scope\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a relative path into a user's subtree",
            cgroup: "0::/../../user.slice/user-1000.slice/user@1000.service/kubepods/pod\(victimUID)/\(victimCID)\n",
            podUID: nil,
            containerID: nil
        ),
        Case(
            name: "attack: a .. inside the path",
            cgroup: "0::/kubepods/burstable/../burstable/pod\(victimUID)/\(victimCID)\n",
            podUID: nil,
            containerID: nil
        ),
    ]

    @Test("locates pod and container", arguments: cases)
    func locates(_ testCase: Case) throws {
        let location = try ContainerLocator.location(in: ContainerLocator.cgroupPaths(testCase.cgroup))
        #expect(location?.containerID == testCase.containerID)
        #expect(location?.podUID == testCase.podUID)
    }

    @Test("a prefix from the agent's own cgroup (kind on cgroup v1) is accepted, and only that one")
    func hierarchyPrefix() throws {
        let text = """
            13:name=systemd:/docker/\(Self.hostCID)/kubepods/besteffort/pod\(Self.uid)/\(Self.cid)
            0::/docker/\(Self.hostCID)/system.slice/containerd.service

            """
        let paths = try ContainerLocator.cgroupPaths(text)
        #expect(try ContainerLocator.location(in: paths) == nil)
        let prefixes = ["/docker/\(Self.hostCID)"]
        #expect(
            try ContainerLocator.location(in: paths, hierarchyPrefixes: prefixes)
                == .init(podUID: Self.uid, containerID: Self.cid)
        )
        // Another container's subtree laid out like a node is not the agent's node.
        let other = "0::/docker/\(Self.victimCID)/kubepods/besteffort/pod\(Self.uid)/\(Self.cid)\n"
        #expect(
            try ContainerLocator.location(in: ContainerLocator.cgroupPaths(other), hierarchyPrefixes: prefixes) == nil
        )
    }

    @Test("the agent's own hierarchy prefix is read from its cgroup file, only when it runs in a pod")
    func ownPrefix() throws {
        let root = FileManager.default.temporaryDirectory.path + "/own-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/self", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Data("4:pids:/docker/\(Self.hostCID)/kubepods/burstable/pod\(Self.uid)/\(Self.cid)\n".utf8).write(
            to: URL(fileURLWithPath: root + "/self/cgroup")
        )
        #expect(ContainerLocator.ownHierarchyPrefixes(procRoot: root) == ["/docker/\(Self.hostCID)"])
        try Data("0::/system.slice/lanyard.service\n".utf8).write(to: URL(fileURLWithPath: root + "/self/cgroup"))
        #expect(ContainerLocator.ownHierarchyPrefixes(procRoot: root).isEmpty)
    }

    @Test("conflicting container IDs or pod UIDs are refused")
    func conflicts() throws {
        let otherCID = String(repeating: "1", count: 64)
        let otherUID = "11111111-2222-3333-4444-555555555555"
        let twoContainers = "4:pids:/kubepods/pod\(Self.uid)/\(Self.cid)\n0::/kubepods/pod\(Self.uid)/\(otherCID)\n"
        let twoPods = "4:pids:/kubepods/pod\(Self.uid)/\(Self.cid)\n0::/kubepods/pod\(otherUID)/\(Self.cid)\n"
        for text in [twoContainers, twoPods] {
            #expect(throws: AttestationError(.containerConflict, "")) {
                try ContainerLocator.location(in: ContainerLocator.cgroupPaths(text))
            }
        }
    }

    @Test(
        "malformed cgroup lines are refused with the line number",
        arguments: ["garbage\n", "0:/path\n", "1:cpu:relative\n"]
    )
    func malformed(_ text: String) throws {
        do {
            _ = try ContainerLocator.cgroupPaths("0::/\n" + text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .procUnreadable)
            #expect(error.message.contains("line 2"))
        }
    }

    @Test("mountinfo is read only when every cgroup path is the namespace root")
    func mountinfoFallback() throws {
        let root = FileManager.default.temporaryDirectory.path + "/locator-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/42", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let mountinfo = """
            25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
            31 25 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw
            32 25 0:26 /../../kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod\(Self.underscored).slice/cri-containerd-\(Self.cid).scope /mnt rw shared:9 - cgroup2 cgroup2 rw

            """
        try Data(mountinfo.utf8).write(to: URL(fileURLWithPath: root + "/42/mountinfo"))

        try Data("0::/\n".utf8).write(to: URL(fileURLWithPath: root + "/42/cgroup"))
        let location = try ContainerLocator.locate(pid: 42, procRoot: root)
        #expect(location == .init(podUID: Self.uid, containerID: Self.cid))

        // A process in a cgroup of its own cannot borrow a container by bind-mounting its cgroup.
        try Data("0::/user.slice/user-1000.slice/session-3.scope\n".utf8).write(
            to: URL(fileURLWithPath: root + "/42/cgroup")
        )
        #expect(try ContainerLocator.locate(pid: 42, procRoot: root) == nil)
    }

    @Test("a process that is gone is reported as unreadable")
    func missingProcess() {
        #expect(throws: AttestationError(.procUnreadable, "")) {
            try ContainerLocator.locate(pid: 999_999_999)
        }
    }

    @Test("random and truncated input never crashes the locator")
    func randomInput() throws {
        let line = "0::/kubepods.slice/kubepods-burstable-pod\(Self.underscored).slice/cri-containerd-\(Self.cid).scope"
        for cut in 0...line.count {
            _ = try? ContainerLocator.location(in: ContainerLocator.cgroupPaths(String(line.prefix(cut))))
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdef-_:/.pod\n ")
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...300, using: &generator)).map { _ in alphabet.randomElement()! })
            _ = try? ContainerLocator.location(in: ContainerLocator.cgroupPaths(text))
        }
    }
}
