import Foundation
import IdentityCache
import SPIFFE
import SPIFFECrypto
import Upstream

/// Fleet mode: adapts ``SPIREServerUpstream`` to what the identity cache consumes. Entries, bundles and every
/// signature come from the server; X.509 SVIDs are signed in batches.
struct SPIREUpstream: IdentityUpstream {
    let server: SPIREServerUpstream

    func state(at now: Date) async throws -> UpstreamState {
        let snapshot = try await server.sync(at: now)
        return UpstreamState(
            entries: snapshot.entries,
            bundle: snapshot.bundle,
            federatedBundles: snapshot.federatedBundles
        )
    }

    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate] {
        try await signX509SVIDs([X509SigningRequest(entry: entry, csr: csr)], at: now)[0].get()
    }

    func signX509SVIDs(
        _ requests: [X509SigningRequest],
        at now: Date
    ) async throws -> [Result<[Certificate], any Error>] {
        try await server.signX509SVIDs(requests.map { ($0.entry.id, $0.csr) }, at: now).map { result in
            result.mapError { $0 as any Error }
        }
    }

    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID {
        try await server.signJWTSVID(entryID: entry.id, spiffeID: entry.spiffeID, audience: audience, at: now)
    }
}
