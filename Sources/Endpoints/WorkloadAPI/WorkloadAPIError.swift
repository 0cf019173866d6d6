public import SPIFFE

/// The failures a backend reports; only the endpoints turn them into gRPC status codes, with SPIRE's choices. The
/// message is safe to send to the workload: no internal detail, no secrets.
public typealias WorkloadAPIError = CodedError<WorkloadAPIErrorCode>

/// Every kind is mapped to a status code in ``CallerAuthenticator``, exhaustively.
public enum WorkloadAPIErrorCode: ErrorCode {
    /// No entry matches the caller: `PERMISSION_DENIED`.
    case noIdentity
    /// An attestor failed: `UNAVAILABLE`.
    case attestationFailed
    /// The caller exited or its PID was reused: `UNAUTHENTICATED`.
    case callerGone
    /// The caller's uid, gid or executable changed since it connected: `UNAUTHENTICATED`.
    case callerChanged
    /// The request is malformed: `INVALID_ARGUMENT`.
    case invalidRequest
    /// The agent cannot serve yet or lost its upstream: `UNAVAILABLE`.
    case unavailable

    public var description: String {
        switch self {
        case .noIdentity: "no identity"
        case .attestationFailed: "attestation failed"
        case .callerGone: "caller gone"
        case .callerChanged: "caller changed"
        case .invalidRequest: "invalid request"
        case .unavailable: "unavailable"
        }
    }
}
