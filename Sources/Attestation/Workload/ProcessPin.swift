import CLinux
public import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// The process at the other end of a Workload API connection, pinned when the connection was accepted, so that
/// every call on it is answered for that process, with the credentials it connected with, or not at all.
///
/// `SO_PEERCRED` records the caller's pid and effective uid and gid at `connect()`. Neither stays true by itself:
/// the process can exec a setuid program (its ids change) or exit (its pid can be recycled) while the connection
/// lives on in a child or in a process it was passed to. So the pin holds a pidfd for the process (from
/// `SO_PEERPIDFD`, else `pidfd_open` at accept), which always refers to that process and never to a newcomer on its
/// pid, and ``verify()`` checks before and after each attestation that:
/// - the process has not exited (`poll` on the pidfd; the start time on kernels without pidfds);
/// - its real and effective uid and gid are still those `SO_PEERCRED` gave (`PIDFD_GET_INFO` on Linux >= 6.13,
///   `/proc/<pid>/status` otherwise, read while the pidfd proves the pid still belongs to the pinned process);
/// - it runs the executable it ran at accept (device and inode of `/proc/<pid>/exe`), so `unix:path` and
///   `unix:sha256` describe the program that connected, not one it exec'ed afterwards.
/// `docs/security.md` explains what each check stops and what is left on kernels older than 5.3.
public final class ProcessPin: Sendable {
    /// The pid, uid and gid `SO_PEERCRED` gave at accept.
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// A pidfd for the process, or -1 without one.
    private let descriptor: Int32
    /// Field 22 of `/proc/<pid>/stat` at accept.
    let startTime: UInt64?
    /// The executable at accept, when it could be examined (it needs ptrace access to another user's process).
    private let executable: FileIdentity?
    /// Why the process could not be pinned at accept (it had already exited): every check fails with it.
    private let failure: AttestationError?
    private let procRoot: String

    /// Where the pin's pidfd comes from.
    public enum Descriptor: Sendable {
        /// The kernel's `SO_PEERPIDFD` for the connection; the pin owns it.
        case pidfd(Int32)
        /// The kernel has no `SO_PEERPIDFD`: `pidfd_open` by pid at accept, with the start time as a second check.
        case openByPID
        /// None could be had (the kernel refused one): the process cannot be pinned and never verifies.
        case none
    }

    /// Pins the caller of a connection just accepted.
    public init(pid: Int32, uid: UInt32, gid: UInt32, descriptor source: Descriptor, procRoot: String = "/proc") {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.procRoot = procRoot
        var descriptor: Int32 = -1
        var failure: AttestationError? = nil
        switch source {
        case .pidfd(let pidfd): descriptor = pidfd
        case .openByPID: if pid > 0, procRoot == "/proc" { descriptor = lanyard_pidfd_open(pid) }
        case .none: failure = AttestationError(.processGone, "process \(pid) could not be pinned")
        }
        self.descriptor = descriptor
        do {
            startTime = try Self.startTime(pid: pid, procRoot: procRoot)
        } catch {
            startTime = nil
            failure = failure ?? error
        }
        executable = FileIdentity(path: "\(procRoot)/\(pid)/exe")
        if failure == nil, descriptor >= 0, lanyard_pidfd_exited(descriptor) != 0 {
            failure = AttestationError(.processGone, "process \(pid) exited before its connection was accepted")
        }
        self.failure = failure
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Throws unless the pinned process is alive, still has the credentials it connected with, and still runs the
    /// same executable. Cheap (a `poll`, an `ioctl` and a `stat` on current kernels): it runs on every call and
    /// before every message of a stream.
    public func verify() throws(AttestationError) {
        if let failure { throw failure }
        let credentials = try currentCredentials()
        var sameExecutable = true
        if let executable {
            sameExecutable = FileIdentity(path: "\(procRoot)/\(pid)/exe")?.isSameFile(as: executable) ?? false
        }
        // Whatever was read above belongs to the pinned process only if it is still alive now: a live process
        // keeps its pid.
        try checkAlive()
        guard credentials.ruid == uid, credentials.euid == uid, credentials.rgid == gid, credentials.egid == gid else {
            throw AttestationError(.credentialsChanged, "process \(pid) has changed its uid or gid since it connected")
        }
        guard sameExecutable else {
            throw AttestationError(.executableChanged, "process \(pid) has exec'ed another program since it connected")
        }
    }

    /// Whether ``verify()`` passes.
    public var isValid: Bool {
        do {
            try verify()
            return true
        } catch {
            return false
        }
    }

    /// Throws `processGone` once the pinned process has exited (or its pid belongs to another process).
    public func checkAlive() throws(AttestationError) {
        if descriptor >= 0 {
            guard lanyard_pidfd_exited(descriptor) == 0 else {
                throw AttestationError(.processGone, "process \(pid) has exited")
            }
            return
        }
        guard let startTime, (try? Self.startTime(pid: pid, procRoot: procRoot)) == startTime else {
            throw AttestationError(.processGone, "process \(pid) has exited or its pid was reused")
        }
    }

    private struct Credentials {
        var ruid, euid, rgid, egid: UInt32
    }

    /// The process's real and effective ids now: from the pidfd where the kernel supports it, else `/proc`.
    private func currentCredentials() throws(AttestationError) -> Credentials {
        if descriptor >= 0 {
            var info = lanyard_process_credentials()
            if lanyard_pidfd_credentials(descriptor, &info) == 0 {
                return Credentials(ruid: info.ruid, euid: info.euid, rgid: info.rgid, egid: info.egid)
            }
            if errno == ESRCH { throw AttestationError(.processGone, "process \(pid) has exited") }
        }
        let status = try ProcStatus(pid: pid, procRoot: procRoot)
        return Credentials(
            ruid: status.realUID,
            euid: status.effectiveUID,
            rgid: status.realGID,
            egid: status.effectiveGID
        )
    }

    /// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so fields are
    /// counted from the last `)`.
    /// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat`), or nil when it cannot be read.
    public static func processStartTicks(pid: Int32, procRoot: String = "/proc") -> UInt64? {
        try? startTime(pid: pid, procRoot: procRoot)
    }

    static func startTime(pid: Int32, procRoot: String) throws(AttestationError) -> UInt64 {
        guard pid > 0 else { throw AttestationError(.processGone, "pid \(pid) is not a process") }
        let path = "\(procRoot)/\(pid)/stat"
        guard let bytes = ProcFile.read(path) else {
            throw AttestationError(.processGone, "process \(pid) is gone (\(path) unreadable)")
        }
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else {
            throw AttestationError(.procUnreadable, "\(path) has no command field")
        }
        // After ")": field 3 (state) is the first; start time is field 22, the 20th after the command.
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        guard fields.count >= 20, let start = ProcFile.numbers(fields[fields.startIndex + 19])?.first else {
            throw AttestationError(.procUnreadable, "\(path) has no start time field")
        }
        return start
    }
}
