import Foundation
import SPIFFE
import Testing

@testable import Attestation

/// Skips a test that needs root (other uids), printing why.
func requireRoot() -> Bool {
    if getuid() == 0 { return true }
    print("skipped: this test needs root to run processes under other uids")
    return false
}

/// Starts `command` under `uid`/`gid` with setpriv and returns the process.
func spawn(_ arguments: [String], uid: UInt32? = nil, gid: UInt32? = nil) throws -> Process {
    let process = Process()
    if let uid, let gid {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid", "\(uid)", "--regid", "\(gid)", "--clear-groups"] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
    }
    try process.run()
    return process
}

/// Serialized: these tests start long-lived children, and a pipe opened by one test must not leak into another's.
@Suite("Process pinning and the unix attestor", .serialized)
struct AttestationTests {
    @Test("status lines give effective ids and supplementary groups")
    func parsesStatus() throws {
        let text = "Name:\tapp\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nGroups:\t4 24 27 \n"
        let status = try ProcStatus(parsing: text, path: "status")
        #expect(status.effectiveUID == 1001)
        #expect(status.effectiveGID == 101)
        #expect(status.supplementaryGIDs == [4, 24, 27])
        #expect(throws: AttestationError.self) { try ProcStatus(parsing: "Uid:\t1\t2\n", path: "status") }
        #expect(throws: AttestationError.self) { try ProcStatus(parsing: "Name:\tx\n", path: "status") }
        #expect(throws: AttestationError.self) {
            try ProcStatus(parsing: "Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nGroups:\tx\n", path: "s")
        }
    }

    @Test("a pinned process that exits is reported gone; a live one is current")
    func pinDetectsExit() throws {
        let child = try spawn(["/bin/sleep", "30"])
        let pin = try ProcessPin(pid: child.processIdentifier)
        #expect(pin.isCurrent)
        stop(child)
        #expect(!pin.isCurrent)
        #expect(throws: AttestationError(.processGone, "")) { try pin.check() }
        #expect(throws: AttestationError(.processGone, "")) { try ProcessPin(pid: child.processIdentifier) }
    }

    @Test("a different start time means a different process, even with the same pid")
    func pinComparesStartTime() throws {
        let pin = try ProcessPin(pid: getpid())
        let impostor = ProcessPinProbe.with(pid: getpid(), startTime: pin.startTime + 1)
        #expect(pin.isCurrent)
        #expect(!impostor.isCurrent)
    }

    @Test("the command name may hold spaces and parentheses")
    func statWithOddName() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("42"),
            withIntermediateDirectories: true
        )
        defer { try? FileManager.default.removeItem(at: root) }
        let fields = (3...52).map { $0 == 22 ? "987654" : "0" }.joined(separator: " ")
        try Data("42 (evil) (name 1) \(fields)\n".utf8).write(to: root.appendingPathComponent("42/stat"))
        #expect(try ProcessPin(pid: 42, procRoot: root.path).startTime == 987_654)
    }

    @Test("the unix attestor reports this process's ids and names")
    func attestsSelf() async throws {
        let selectors = try await UnixAttestor().attest(pid: getpid())
        #expect(selectors.contains(try Selector("unix:uid:\(geteuid())")))
        #expect(selectors.contains(try Selector("unix:gid:\(getegid())")))
        if geteuid() == 0 {
            #expect(selectors.contains(try Selector("unix:user:root")))
            #expect(selectors.contains(try Selector("unix:group:root")))
        }
    }

    @Test("path and sha256 of the executable, bounded by the size limit")
    func attestsPath() async throws {
        let child = try spawn(["/bin/sleep", "30"])
        defer { stop(child) }
        let selectors = try await UnixAttestor(config: .init(discoverWorkloadPath: true)).attest(
            pid: child.processIdentifier
        )
        let path = try #require(selectors.first { $0.value.hasPrefix("path:") })
        #expect(path.value.hasSuffix("sleep"))
        let digest = try #require(selectors.first { $0.value.hasPrefix("sha256:") })
        let expected = try shellOutput(["/usr/bin/sha256sum", String(path.value.dropFirst(5))]).prefix(64)
        #expect(digest.value == "sha256:" + expected)
        await #expect(throws: AttestationError(.workloadTooLarge, "")) {
            try await UnixAttestor(config: .init(discoverWorkloadPath: true, workloadSizeLimit: 10)).attest(
                pid: child.processIdentifier
            )
        }
    }

    @Test("a process under another uid is attested with that uid")
    func attestsOtherUser() async throws {
        guard requireRoot() else { return }
        let child = try spawn(["/bin/sleep", "30"], uid: 1234, gid: 5678)
        defer { stop(child) }
        // setpriv execs sleep in the same process; wait until the credentials have changed.
        var selectors: [Selector] = []
        for _ in 0..<200 {
            selectors = try await UnixAttestor().attest(pid: child.processIdentifier)
            if selectors.contains(try Selector("unix:uid:1234")) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(selectors.contains(try Selector("unix:uid:1234")))
        #expect(selectors.contains(try Selector("unix:gid:5678")))
        #expect(!selectors.contains { $0.value.hasPrefix("supplementary_gid:") })
    }
}

/// Kills a child for certain: SIGKILL, since a child may inherit a blocked SIGTERM from the test runner.
func stop(_ process: Process) {
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
}

/// Builds a pin with a chosen start time, to stand for a recycled PID.
enum ProcessPinProbe {
    static func with(pid: Int32, startTime: UInt64) -> ProcessPin {
        ProcessPin(pid: pid, startTime: startTime, procRoot: "/proc")
    }
}

/// Runs a command with its output in a file rather than a pipe: a pipe's write end can leak into children other
/// tests start at the same moment, and then reading it waits for them to exit.
func shellOutput(_ arguments: [String]) throws -> String {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: arguments[0])
    process.arguments = Array(arguments.dropFirst())
    process.standardOutput = handle
    try process.run()
    process.waitUntilExit()
    try handle.close()
    return String(decoding: try Data(contentsOf: output), as: UTF8.self)
}
