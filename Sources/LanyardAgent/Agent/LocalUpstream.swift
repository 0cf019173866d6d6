import Foundation
import IdentityCache
import SPIFFE
import SPIFFECrypto
import Upstream

/// Standalone mode: the embedded CA signs, and the entries and federated bundles come from the configuration.
struct LocalUpstream: IdentityUpstream {
    let authority: LocalAuthority
    let entries: [RegistrationEntry]
    let federatedBundles: [TrustDomain: SPIFFEBundle]

    func state(at now: Date) async throws -> UpstreamState {
        _ = try authority.rotateIfDue(now: now)
        return UpstreamState(entries: entries, bundle: authority.bundle(at: now), federatedBundles: federatedBundles)
    }

    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate] {
        try authority.signX509SVID(
            csr: csr,
            spiffeID: entry.spiffeID,
            ttl: entry.x509SVIDTTL,
            dnsNames: entry.dnsNames,
            now: now
        )
    }

    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID {
        try authority.signJWTSVID(spiffeID: entry.spiffeID, audience: audience, ttl: entry.jwtSVIDTTL, now: now)
    }
}
