public import Foundation
public import SPIFFE

/// What the Workload API handler needs from the rest of the agent, declared here by the consumer (as SPIRE's
/// workload handler declares its `Manager`), so the handler is testable alone and depends on no other agent module.
public protocol WorkloadAPIBackend: Sendable {
    /// Pins the process behind a connection as it is accepted. Runs on the connection's event loop, so it must be
    /// quick (a few system calls). A pidfd in `process` is owned by the pin from here on.
    func pin(_ credentials: WorkloadProcess, process: PeerProcess) -> any CallerPin

    /// Attests the process behind a call: checks its pin, runs the attestors, checks the pin again. Throws
    /// ``WorkloadAPIError`` (`attestationFailed`, `callerGone`, `callerChanged`).
    func attest(_ caller: ConnectedCaller) async throws -> AttestedCaller

    /// Sends the caller's identities and bundles into `continuation` now and after every change, until it is
    /// finished or its stream is cancelled. The caller owns the continuation, so it can end the subscription itself
    /// (a client gone) without a task in between.
    func subscribe(_ caller: AttestedCaller, to continuation: AsyncStream<WorkloadUpdate>.Continuation)

    /// One JWT-SVID per matching identity (or only `spiffeID`'s).
    func jwtSVIDs(for caller: AttestedCaller, audience: [String], spiffeID: SPIFFEID?) async throws -> [WorkloadJWTSVID]

    /// Validates a JWT-SVID against the bundles the caller may see.
    func validateJWTSVID(_ token: String, audience: String, for caller: AttestedCaller) async throws -> ValidatedJWTSVID

    /// Whether this agent issues WIT-SVIDs; the WIT-SVID profile's calls answer `UNIMPLEMENTED` otherwise.
    var issuesWITSVIDs: Bool { get }

    /// The caller's WIT-SVIDs (or only `spiffeID`'s), each with its private key, in the order and with the hint
    /// rules of its X509-SVIDs, and when the first of them is due for renewal.
    func witSVIDs(for caller: AttestedCaller, spiffeID: SPIFFEID?) async throws -> WorkloadWITSVIDs

    /// The caller is about to be told "no identity issued" (for the log).
    func noIdentityIssued(to caller: AttestedCaller)

    /// `svids` are about to be written to the caller on a Workload API or SDS stream (for the audit trail).
    func handed(_ svids: [WorkloadX509SVID], to caller: AttestedCaller)
}

extension WorkloadAPIBackend {
    public var issuesWITSVIDs: Bool { false }

    public func witSVIDs(for caller: AttestedCaller, spiffeID: SPIFFEID?) async throws -> WorkloadWITSVIDs {
        WorkloadWITSVIDs(svids: [], renewAt: nil)
    }

    public func noIdentityIssued(to caller: AttestedCaller) {}

    public func handed(_ svids: [WorkloadX509SVID], to caller: AttestedCaller) {}

    /// The caller's identities and bundles now and after every change, until the stream is cancelled. Only the
    /// newest update waits for a slow reader: each is a whole snapshot.
    public func updates(for caller: AttestedCaller) -> AsyncStream<WorkloadUpdate> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: WorkloadUpdate.self,
            bufferingPolicy: .bufferingNewest(1)
        )
        subscribe(caller, to: continuation)
        return stream
    }
}

/// What the kernel gave for the process at the other end of a connection, besides its credentials.
public enum PeerProcess: Sendable {
    /// A pidfd from `SO_PEERPIDFD`: always that process, never a later one on its pid.
    case pidfd(Int32)
    /// The kernel predates `SO_PEERPIDFD` (Linux < 6.5): the pin finds the process by pid, as soon as it can.
    case pidfdUnsupported
    /// The kernel has `SO_PEERPIDFD` but gave none: the caller cannot be pinned.
    case unknown
}

/// The process at the other end of a connection, pinned when the connection was accepted. Every call and every
/// message of a stream is answered only while ``verify()`` passes.
public protocol CallerPin: Sendable {
    /// Throws ``WorkloadAPIError`` (`callerGone`, `callerChanged`) unless the process that connected is alive, has
    /// the credentials it connected with, and runs the program it ran then.
    func verify() throws
}

/// A connection's caller: the kernel's credentials at accept and the pin that keeps them true.
public struct ConnectedCaller: Sendable {
    public let credentials: WorkloadProcess
    public let pin: any CallerPin

    public init(credentials: WorkloadProcess, pin: any CallerPin) {
        self.credentials = credentials
        self.pin = pin
    }
}

/// A caller after attestation: who it is, what the attestors proved, and the pin every later message re-checks.
public struct AttestedCaller: Sendable {
    public let credentials: WorkloadProcess
    public let selectors: Set<Selector>
    public let pin: any CallerPin

    public init(credentials: WorkloadProcess, selectors: Set<Selector>, pin: any CallerPin) {
        self.credentials = credentials
        self.selectors = selectors
        self.pin = pin
    }
}

/// One X509-SVID as the Workload API carries it.
public struct WorkloadX509SVID: Hashable, Sendable {
    public let spiffeID: SPIFFEID
    /// DER certificates laid end to end, leaf first.
    public let chainDER: Data
    /// PKCS#8 DER private key.
    public let privateKeyDER: Data
    /// The trust domain's X.509 authorities, DER laid end to end.
    public let bundleDER: Data
    public let hint: String
    /// The chain and key in PEM, as Envoy's SDS carries them.
    public let chainPEM: String
    public let privateKeyPEM: String
    /// The registration entry it was minted for (for the audit trail).
    public let entryID: String

    public init(
        spiffeID: SPIFFEID,
        chainDER: Data,
        privateKeyDER: Data,
        bundleDER: Data,
        hint: String,
        chainPEM: String,
        privateKeyPEM: String,
        entryID: String = ""
    ) {
        self.entryID = entryID
        self.spiffeID = spiffeID
        self.chainDER = chainDER
        self.privateKeyDER = privateKeyDER
        self.bundleDER = bundleDER
        self.hint = hint
        self.chainPEM = chainPEM
        self.privateKeyPEM = privateKeyPEM
    }
}

/// Everything a caller may see at one moment; every Workload API stream derives its messages from it.
public struct WorkloadUpdate: Hashable, Sendable {
    /// The caller's identities, the default first. Empty means none.
    public let svids: [WorkloadX509SVID]
    /// X.509 authorities by trust domain: the local one and those the caller's entries federate with.
    public let x509Bundles: [TrustDomain: Data]
    /// JWT authorities as a standard JWKS document, by trust domain.
    public let jwtBundles: [TrustDomain: Data]
    /// The X.509 authorities in PEM, by trust domain, as Envoy's SDS carries them.
    public let x509BundlesPEM: [TrustDomain: String]
    /// WIT authorities as a standard JWKS document, by trust domain (those that publish any).
    public let witBundles: [TrustDomain: String]
    public let localTrustDomain: TrustDomain

    public init(
        svids: [WorkloadX509SVID],
        x509Bundles: [TrustDomain: Data],
        jwtBundles: [TrustDomain: Data],
        x509BundlesPEM: [TrustDomain: String],
        witBundles: [TrustDomain: String] = [:],
        localTrustDomain: TrustDomain
    ) {
        self.svids = svids
        self.x509Bundles = x509Bundles
        self.jwtBundles = jwtBundles
        self.x509BundlesPEM = x509BundlesPEM
        self.witBundles = witBundles
        self.localTrustDomain = localTrustDomain
    }
}

/// One WIT-SVID as the Workload API carries it: the token and its private key as a JWK.
public struct WorkloadWITSVID: Hashable, Sendable {
    public let spiffeID: SPIFFEID
    public let token: String
    /// The private key as a JWK (RFC 7517) document.
    public let privateKeyJWK: String
    public let hint: String

    public init(spiffeID: SPIFFEID, token: String, privateKeyJWK: String, hint: String) {
        self.spiffeID = spiffeID
        self.token = token
        self.privateKeyJWK = privateKeyJWK
        self.hint = hint
    }
}

/// A caller's WIT-SVIDs, and when the stream should look again (the earliest renewal).
public struct WorkloadWITSVIDs: Hashable, Sendable {
    public let svids: [WorkloadWITSVID]
    public let renewAt: Date?

    public init(svids: [WorkloadWITSVID], renewAt: Date?) {
        self.svids = svids
        self.renewAt = renewAt
    }
}

/// One JWT-SVID answer.
public struct WorkloadJWTSVID: Hashable, Sendable {
    public let spiffeID: SPIFFEID
    public let token: String
    public let hint: String

    public init(spiffeID: SPIFFEID, token: String, hint: String) {
        self.spiffeID = spiffeID
        self.token = token
        self.hint = hint
    }
}

/// What a validated token says.
public struct ValidatedJWTSVID: Hashable, Sendable {
    public let spiffeID: SPIFFEID
    public let claims: [String: JSONValue]

    public init(spiffeID: SPIFFEID, claims: [String: JSONValue]) {
        self.spiffeID = spiffeID
        self.claims = claims
    }
}
