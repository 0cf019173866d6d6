public import SPIFFE

/// A workload a broker names (SPIFFE Broker API, section 3.1): a process on this node, or a pod on this node.
public enum WorkloadReferenceTarget: Sendable, Hashable, CustomStringConvertible {
    case pid(Int32)
    /// A pod by UID, by namespace and name, or by both (then the UID must be the named pod's).
    case pod(uid: String?, namespace: String?, name: String?)

    public var description: String {
        switch self {
        case .pid(let pid): "process \(pid)"
        case .pod(let uid, let namespace, let name):
            "pod " + [namespace.map { "\($0)/" }, name, uid.map { "(uid \($0))" }].compactMap { $0 }.joined()
        }
    }
}

/// Why a reference cannot be served, as the Broker API names it (section 4.8).
public struct BrokerReferenceError: Error, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        /// `INVALID_ARGUMENT`: missing, malformed or of a type this server does not know.
        case invalid = "WORKLOAD_REFERENCE_INVALID"
        /// `NOT_FOUND`: no such workload on this node (or it stopped).
        case notFound = "WORKLOAD_NOT_FOUND"
        /// `PERMISSION_DENIED`: the workload exists but is entitled to nothing.
        case notEntitled = "WORKLOAD_NOT_ENTITLED"
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason.rawValue): \(message)" }
}

/// What the Broker API handler needs from the agent, declared here by the consumer.
public protocol BrokerBackend: Sendable {
    /// The Workload API backend: subscriptions, JWT-SVIDs and bundles, exactly as a workload's own calls get them.
    var workloads: any WorkloadAPIBackend { get }

    /// The workload `target` names, attested as a Workload API caller would be (same attestors, same pinning for a
    /// process). Throws ``BrokerReferenceError``.
    func resolve(_ target: WorkloadReferenceTarget) async throws -> AttestedCaller

    /// Whether the workload is still there (its process alive and unchanged, its pod still listed with that UID);
    /// a stream for it ends once it is not.
    func isPresent(_ target: WorkloadReferenceTarget, caller: AttestedCaller) async -> Bool
}
