/// The process at the other end of a Workload API connection, as the kernel described it when the caller connected
/// (`SO_PEERCRED`): its uid and gid are the ones it holds for the whole connection, checked by its pin on every call.
/// The endpoints read it from the socket; the attestors describe it.
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
