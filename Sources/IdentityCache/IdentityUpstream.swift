public import Foundation
public import SPIFFE
public import SPIFFECrypto

/// What the cache needs from an upstream, declared here by the consumer. The local CA and, later, a SPIRE Server
/// client are wired to it by the agent; the cache never imports them.
public protocol IdentityUpstream: Sendable {
    /// The current entries and bundles.
    func state(at now: Date) async throws -> UpstreamState

    /// Signs the agent's CSR for `entry`, returning the chain leaf first.
    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate]

    /// Mints a JWT-SVID for `entry` and `audience`.
    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID
}

/// A snapshot of what the upstream says.
public struct UpstreamState: Hashable, Sendable {
    public var entries: [RegistrationEntry]
    public var bundle: SPIFFEBundle
    public var federatedBundles: [TrustDomain: SPIFFEBundle]

    public init(entries: [RegistrationEntry], bundle: SPIFFEBundle, federatedBundles: [TrustDomain: SPIFFEBundle]) {
        self.entries = entries
        self.bundle = bundle
        self.federatedBundles = federatedBundles
    }
}
