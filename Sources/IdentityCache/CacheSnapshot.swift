package import Foundation
package import SPIFFE

/// What a restart needs to serve at once: the entries, bundles and X509-SVIDs of one moment, as ``CacheState``
/// held them. An SVID keeps its renewal time and the entry revision it was minted for, so a restored agent renews
/// it when it is due and not because it restarted.
package struct CacheSnapshot: Sendable, Equatable {
    package var takenAt: Date
    package var entries: [RegistrationEntry]
    package var bundle: SPIFFEBundle
    package var federatedBundles: [TrustDomain: SPIFFEBundle]
    /// By entry ID.
    package var svids: [String: CacheState.CachedSVID]

    package init(
        takenAt: Date,
        entries: [RegistrationEntry],
        bundle: SPIFFEBundle,
        federatedBundles: [TrustDomain: SPIFFEBundle],
        svids: [String: CacheState.CachedSVID]
    ) {
        self.takenAt = takenAt
        self.entries = entries
        self.bundle = bundle
        self.federatedBundles = federatedBundles
        self.svids = svids
    }
}
