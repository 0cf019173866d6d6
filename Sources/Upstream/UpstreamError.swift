/// An upstream failure: storage of the authority, or a signing request it refused.
public struct UpstreamError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String

        /// `data_dir` could not be read or written.
        public static let storage = Code(name: "storage")
        /// Stored authority files are unreadable or do not fit together.
        public static let corruptState = Code(name: "corrupt state")
        /// The authority refused to sign.
        public static let signingRefused = Code(name: "signing refused")
        /// The entry is unknown to the upstream.
        public static let unknownEntry = Code(name: "unknown entry")
        /// The SPIRE Server could not be reached or failed the call; retried with backoff.
        public static let unavailable = Code(name: "unavailable")
        /// Node attestation could not be performed or was refused.
        public static let attestation = Code(name: "attestation")
        /// The server's certificate is not trusted or is not the server's SPIFFE ID.
        public static let untrustedServer = Code(name: "untrusted server")
        /// The server answered something that does not follow its API.
        public static let protocolViolation = Code(name: "protocol violation")

        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
