package import Foundation
package import SPIFFE
package import SPIFFECrypto

/// What the cache needs from an upstream, declared here by the consumer. The local CA and, later, a SPIRE Server
/// client are wired to it by the agent; the cache never imports them.
package protocol IdentityUpstream: Sendable {
    /// The current entries and bundles.
    func state(at now: Date) async throws -> UpstreamState

    /// Signs the agent's CSR for `entry`, returning the chain leaf first.
    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate]

    /// Signs several CSRs at once, each result in its request's place. Upstreams with a batch API (SPIRE's
    /// `BatchNewX509SVID`) implement it; the default signs one at a time.
    func signX509SVIDs(
        _ requests: [X509SigningRequest],
        at now: Date
    ) async throws -> [Result<[Certificate], any Error>]

    /// Mints a JWT-SVID for `entry` and `audience`.
    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID

    /// Mints a WIT-SVID for `entry` binding `workloadKey`; nil when this upstream does not issue WIT-SVIDs (SPIRE
    /// Server's agent API has no WIT-SVID call).
    func signWITSVID(for entry: RegistrationEntry, workloadKey: PublicKey, at now: Date) async throws -> WITSVID?
}

/// One X.509 signing request: the entry and the CSR over the key the agent made for it.
package struct X509SigningRequest: Sendable {
    package var entry: RegistrationEntry
    package var csr: CertificateSigningRequest

    package init(entry: RegistrationEntry, csr: CertificateSigningRequest) {
        self.entry = entry
        self.csr = csr
    }
}

extension IdentityUpstream {
    package func signWITSVID(
        for entry: RegistrationEntry,
        workloadKey: PublicKey,
        at now: Date
    ) async throws -> WITSVID? { nil }

    package func signX509SVIDs(
        _ requests: [X509SigningRequest],
        at now: Date
    ) async throws -> [Result<[Certificate], any Error>] {
        var results: [Result<[Certificate], any Error>] = []
        for request in requests {
            do {
                results.append(.success(try await signX509SVID(csr: request.csr, for: request.entry, at: now)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }
}

/// A snapshot of what the upstream says.
package struct UpstreamState: Hashable, Sendable {
    package var entries: [RegistrationEntry]
    package var bundle: SPIFFEBundle
    package var federatedBundles: [TrustDomain: SPIFFEBundle]

    package init(entries: [RegistrationEntry], bundle: SPIFFEBundle, federatedBundles: [TrustDomain: SPIFFEBundle]) {
        self.entries = entries
        self.bundle = bundle
        self.federatedBundles = federatedBundles
    }
}
