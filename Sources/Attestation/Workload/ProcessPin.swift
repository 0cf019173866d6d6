/// Pins a process by PID and start time, so an identity is never handed to a process that merely reused the PID.
///
/// The kernel's `SO_PEERCRED` PID is taken at `connect()`. If that process exits and the PID is recycled before
/// attestation finishes, `/proc/<pid>` describes a stranger. The start time (field 22 of `/proc/<pid>/stat`,
/// clock ticks since boot) differs for every process that ever held the PID, so comparing it before and after
/// attestation closes the window.
public struct ProcessPin: Hashable, Sendable {
    public let pid: Int32
    public let startTime: UInt64
    let procRoot: String

    init(pid: Int32, startTime: UInt64, procRoot: String) {
        self.pid = pid
        self.startTime = startTime
        self.procRoot = procRoot
    }

    /// Reads the start time of `pid` now.
    public init(pid: Int32, procRoot: String = "/proc") throws(AttestationError) {
        self.pid = pid
        self.procRoot = procRoot
        self.startTime = try Self.startTime(pid: pid, procRoot: procRoot)
    }

    /// Whether the same process still holds the PID.
    public var isCurrent: Bool {
        (try? Self.startTime(pid: pid, procRoot: procRoot)) == startTime
    }

    /// Throws `processGone` unless the pinned process still holds the PID.
    public func check() throws(AttestationError) {
        guard isCurrent else {
            throw AttestationError(.processGone, "process \(pid) exited or its pid was reused during attestation")
        }
    }

    /// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so fields are
    /// counted from the last `)`.
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
