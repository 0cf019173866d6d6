import Foundation
import LanyardTestSupport
import SPIFFE
import Testing

@testable import Attestation

/// Skips a test that needs root (other uids), printing why.
func requireRoot() -> Bool {
    if getuid() == 0 { return true }
    print("skipped: this test needs root to run processes under other uids")
    return false
}

/// Starts `command`, under `uid`/`gid` through setpriv if given.
func spawn(_ arguments: [String], uid: UInt32? = nil, gid: UInt32? = nil) async throws -> ChildProcess {
    guard let uid, let gid else { return try await ChildProcess.start(arguments) }
    return try await ChildProcess.start(
        ["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(gid)", "--clear-groups"] + arguments
    )
}

/// Serialized: these tests start long-lived children, and a pipe opened by one test must not leak into another's.
@Suite("Process pinning and the unix attestor", .serialized, .timeLimit(.minutes(5)))
struct AttestationTests {
    @Test("status lines give real and effective ids and supplementary groups")
    func parsesStatus() throws {
        let text = "Name:\tapp\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nGroups:\t4 24 27 \n"
        let status = try ProcStatus(parsing: text, path: "status")
        #expect(status.realUID == 1000)
        #expect(status.effectiveUID == 1001)
        #expect(status.realGID == 100)
        #expect(status.effectiveGID == 101)
        #expect(status.supplementaryGIDs == [4, 24, 27])
        #expect(throws: AttestationError.self) { try ProcStatus(parsing: "Uid:\t1\t2\n", path: "status") }
        #expect(throws: AttestationError.self) { try ProcStatus(parsing: "Name:\tx\n", path: "status") }
        #expect(throws: AttestationError.self) {
            try ProcStatus(parsing: "Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\nGroups:\tx\n", path: "s")
        }
    }

    @Test("a pinned process that exits fails verification; a process already gone at accept never verifies")
    func pinDetectsExit() async throws {
        let child = try await spawn(["/bin/sleep", "30"])
        let pin = ProcessPin(pid: child.pid, uid: geteuid(), gid: getegid(), descriptor: .openByPID)
        try pin.verify()
        child.signal(SIGKILL)
        await child.waitUntilExit()
        #expect(throws: AttestationError(.processGone, "")) { try pin.verify() }
        let late = ProcessPin(pid: child.pid, uid: geteuid(), gid: getegid(), descriptor: .openByPID)
        #expect(throws: AttestationError(.processGone, "")) { try late.verify() }
    }

    @Test("without a pidfd, a different start time means a different process on the same pid")
    func pinComparesStartTime() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("42"),
            withIntermediateDirectories: true
        )
        defer { try? FileManager.default.removeItem(at: root) }
        func write(startTime: Int) throws {
            let fields = (3...52).map { $0 == 22 ? "\(startTime)" : "0" }.joined(separator: " ")
            try Data("42 (app) \(fields)\n".utf8).write(to: root.appendingPathComponent("42/stat"))
        }
        try write(startTime: 1000)
        try Data("Uid:\t7\t7\t7\t7\nGid:\t8\t8\t8\t8\n".utf8).write(to: root.appendingPathComponent("42/status"))
        let pin = ProcessPin(pid: 42, uid: 7, gid: 8, descriptor: .openByPID, procRoot: root.path)
        try pin.verify()
        try write(startTime: 1001)
        #expect(throws: AttestationError(.processGone, "")) { try pin.verify() }
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
        #expect(try ProcessPin.startTime(pid: 42, procRoot: root.path) == 987_654)
    }

    @Test("the unix attestor reports the connection's ids and their names")
    func attestsSelf() async throws {
        let selectors = try await UnixAttestor().attest(WorkloadProcess(pid: getpid(), uid: geteuid(), gid: getegid()))
        #expect(selectors.contains(try Selector("unix:uid:\(geteuid())")))
        #expect(selectors.contains(try Selector("unix:gid:\(getegid())")))
        if geteuid() == 0 {
            #expect(selectors.contains(try Selector("unix:user:root")))
            #expect(selectors.contains(try Selector("unix:group:root")))
        }
    }

    @Test("path and sha256 of the executable, bounded by the size limit, hashed once per file")
    func attestsPath() async throws {
        let child = try await spawn(["/bin/sleep", "30"])
        defer { child.stop() }
        let process = WorkloadProcess(pid: child.pid, uid: geteuid(), gid: getegid())
        let attestor = UnixAttestor(config: .init(discoverWorkloadPath: true))
        let selectors = try await attestor.attest(process)
        let path = try #require(selectors.first { $0.value.hasPrefix("path:") })
        #expect(path.value.hasSuffix("sleep"))
        let digest = try #require(selectors.first { $0.value.hasPrefix("sha256:") })
        let expected = try await ChildProcess.run(["/usr/bin/sha256sum", String(path.value.dropFirst(5))]).output
            .prefix(64)
        #expect(digest.value == "sha256:" + expected)
        // Twenty callers of the same binary, some at once: one reading of the file.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 { group.addTask { _ = try await attestor.attest(process) } }
            try await group.waitForAll()
        }
        #expect(attestor.hasher.filesHashed == 1)
        let limited = UnixAttestor(
            config: .init(discoverWorkloadPath: true, hashLimits: .init(sizeLimit: 10, timeLimit: .seconds(30)))
        )
        await #expect(throws: AttestationError(.workloadTooLarge, "")) { try await limited.attest(process) }
        #expect(limited.hasher.filesHashed == 0)
    }

    @Test("a pin holds the connection's ids: a process under another uid verifies only with that uid")
    func pinComparesCredentials() async throws {
        guard requireRoot() else { return }
        let child = try await spawn(["/bin/sleep", "30"], uid: 1234, gid: 5678)
        defer { child.stop() }
        // setpriv execs sleep in the same process; wait until the credentials have changed.
        for _ in 0..<200 {
            let status = try ProcStatus(pid: child.pid, procRoot: "/proc")
            if status.effectiveUID == 1234 && status.effectiveGID == 5678 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        try ProcessPin(pid: child.pid, uid: 1234, gid: 5678, descriptor: .openByPID).verify()
        #expect(throws: AttestationError(.credentialsChanged, "")) {
            try ProcessPin(pid: child.pid, uid: 0, gid: 0, descriptor: .openByPID).verify()
        }
        #expect(throws: AttestationError(.credentialsChanged, "")) {
            try ProcessPin(pid: child.pid, uid: 1234, gid: 0, descriptor: .openByPID).verify()
        }
    }
}
