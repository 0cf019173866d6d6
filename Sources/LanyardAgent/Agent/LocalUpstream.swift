package import Foundation
package import IdentityCache
package import Logging
package import SPIFFE
package import SPIFFECrypto
import Synchronization
package import Upstream

/// Standalone mode: the embedded CA signs, and the entries and federated bundles come from the configuration
/// (replaced on reload).
package final class LocalUpstream: IdentityUpstream {
    struct Registrations: Sendable {
        var entries: [RegistrationEntry]
        var federatedBundles: [TrustDomain: SPIFFEBundle]
    }

    let authority: LocalAuthority
    private let registrations: Mutex<Registrations>
    /// Entries instantiated from templated entries, for the callers seen.
    let templates: TemplateInstances
    private let logger: Logger

    package init(
        authority: LocalAuthority,
        entries: [RegistrationEntry],
        templates: [EntryTemplate] = [],
        maximumTemplateInstances: Int = 10_000,
        federatedBundles: [TrustDomain: SPIFFEBundle],
        logger: Logger
    ) {
        self.authority = authority
        self.registrations = Mutex(Registrations(entries: entries, federatedBundles: federatedBundles))
        self.templates = TemplateInstances(templates: templates, limit: maximumTemplateInstances)
        self.logger = logger
    }

    /// Replaces the entries, templates and federated bundles; the next sync hands them to the cache.
    func replace(
        entries: [RegistrationEntry],
        templates: [EntryTemplate],
        maximumTemplateInstances: Int,
        federatedBundles: [TrustDomain: SPIFFEBundle]
    ) {
        registrations.withLock { $0 = Registrations(entries: entries, federatedBundles: federatedBundles) }
        self.templates.replace(templates: templates, limit: maximumTemplateInstances)
    }

    /// The entries and bundle, after rotating the root if it is due. A rotation that fails (its files cannot be
    /// written: a root that is not stored must never sign) waits for the next pass while the current root is live,
    /// so SVIDs keep being renewed; with no live root left it fails the pass.
    package func state(at now: Date) async throws -> UpstreamState {
        do {
            _ = try authority.rotateIfDue(now: now)
        } catch {
            guard authority.canSign(at: now) else { throw error }
            logger.error(
                "cannot rotate the signing root; the current root keeps signing and rotation is retried",
                metadata: [LogKey.error: "\(error)"]
            )
        }
        let current = registrations.withLock { $0 }
        return UpstreamState(
            entries: current.entries + templates.entries,
            bundle: authority.bundle(at: now),
            federatedBundles: current.federatedBundles
        )
    }

    package func signX509SVID(
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

    package func signWITSVID(
        for entry: RegistrationEntry,
        workloadKey: PublicKey,
        at now: Date
    ) async throws -> WITSVID? {
        try authority.signWITSVID(
            spiffeID: entry.spiffeID,
            workloadKey: workloadKey,
            ttl: entry.witSVIDTTL ?? entry.jwtSVIDTTL,
            now: now
        )
    }

    package func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID {
        try authority.signJWTSVID(spiffeID: entry.spiffeID, audience: audience, ttl: entry.jwtSVIDTTL, now: now)
    }
}
