public import SPIFFE

/// An upstream failure: storage of the authority or the agent identity, a signing request refused, or SPIRE Server
/// unreachable or misbehaving.
public typealias UpstreamError = CodedError<UpstreamErrorCode>

public struct UpstreamErrorCode: ErrorCode {
    let name: String

    /// `data_dir` could not be read or written.
    public static let storage = Self(name: "storage")
    /// Stored authority files are unreadable or do not fit together.
    public static let corruptState = Self(name: "corrupt state")
    /// The authority refused to sign.
    public static let signingRefused = Self(name: "signing refused")
    /// The entry is unknown to the upstream.
    public static let unknownEntry = Self(name: "unknown entry")
    /// The SPIRE Server could not be reached or failed the call; retried with backoff.
    public static let unavailable = Self(name: "unavailable")
    /// Node attestation could not be performed or was refused.
    public static let attestation = Self(name: "attestation")
    /// The server's certificate is not trusted or is not the server's SPIFFE ID.
    public static let untrustedServer = Self(name: "untrusted server")
    /// The server refused the agent's SVID (PERMISSION_DENIED on a sync: evicted, or unknown to it).
    public static let agentRefused = Self(name: "agent refused")
    /// The server answered something that does not follow its API.
    public static let protocolViolation = Self(name: "protocol violation")

    public var description: String { name }
}
