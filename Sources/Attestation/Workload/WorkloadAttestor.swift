public import SPIFFE

/// Turns a caller's process into selectors. Each attestor proves one kind of fact (unix ids, kubernetes pod…);
/// the agent runs them all and takes the union.
public protocol WorkloadAttestor: Sendable {
    /// The selector type this attestor produces, e.g. `unix`; used in logs and metrics.
    var name: String { get }

    /// Selectors for `process`. Throws when the facts cannot be read; an empty answer means "nothing to say".
    /// The caller checks the process's pin before and after, so what is read from `/proc/<pid>` meanwhile belongs
    /// to the process that connected.
    func attest(_ process: WorkloadProcess) async throws -> [Selector]
}

/// The process behind a call, as the kernel described it when the caller connected (`SO_PEERCRED`): its uid and
/// gid are the ones it holds for the whole connection, checked by its ``ProcessPin`` on every call.
public struct WorkloadProcess: Hashable, Sendable, CustomStringConvertible {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
}
