/// The failures a backend reports; only ``WorkloadAPIHandler`` turns them into gRPC status codes, with SPIRE's
/// choices (see `code` below).
public struct WorkloadAPIError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// No entry matches the caller: `PERMISSION_DENIED`.
        case noIdentity
        /// Every attestor failed: `UNAVAILABLE`.
        case attestationFailed
        /// The caller exited or its PID was reused: `UNAUTHENTICATED`.
        case callerGone
        /// The caller's uid, gid or executable changed since it connected: `UNAUTHENTICATED`.
        case callerChanged
        /// The request is malformed: `INVALID_ARGUMENT`.
        case invalidRequest
        /// The agent cannot serve yet or lost its upstream: `UNAVAILABLE`.
        case unavailable
    }

    public let kind: Kind
    /// Safe to send to the workload: no internal detail, no secrets.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
