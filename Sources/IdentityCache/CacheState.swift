package import Foundation
package import SPIFFE
package import SPIFFECrypto

/// The cache's whole state as a value: entries, bundles and one SVID per entry. Every
/// operation is a synchronous mutation, so it is unit-tested without threads or clocks.
package struct CacheState: Sendable {
    /// An SVID with the time it is due for renewal and the entry revision it was minted for.
    package struct CachedSVID: Sendable, Equatable {
        package let svid: IssuedSVID
        package let renewAt: Date
        package let revision: Int64
        package let dnsNames: [String]

        package init(svid: IssuedSVID, renewAt: Date, revision: Int64, dnsNames: [String]) {
            self.svid = svid
            self.renewAt = renewAt
            self.revision = revision
            self.dnsNames = dnsNames
        }
    }

    package private(set) var entries: [RegistrationEntry] = []
    package private(set) var bundle: SPIFFEBundle? = nil
    package private(set) var federatedBundles: [TrustDomain: SPIFFEBundle] = [:]
    package private(set) var svids: [String: CachedSVID] = [:]
    /// When the rotator last tried to sync, successful or not: the watchdog's proof that rotation is alive.
    package private(set) var lastSyncAttempt: Date? = nil
    /// Grows whenever entries, bundles or SVIDs change: what a stored snapshot is compared against.
    package private(set) var generation: UInt64 = 0
    /// When the snapshot this state was restored from was taken; nil once the upstream has answered since.
    package private(set) var restoredFrom: Date? = nil
    /// When syncs started failing, nil while the last one succeeded.
    package private(set) var failingSince: Date? = nil

    package init() {}

    /// Applies what the upstream says. SVIDs of removed entries are dropped. Returns whether anything a workload
    /// sees changed.
    package mutating func apply(_ state: UpstreamState) -> Bool {
        let ids = Set(state.entries.map(\.id))
        let removed = svids.keys.filter { !ids.contains($0) }
        for id in removed { svids[id] = nil }
        let changed =
            entries != state.entries || bundle != state.bundle || federatedBundles != state.federatedBundles
            || !removed.isEmpty
        entries = state.entries
        bundle = state.bundle
        federatedBundles = state.federatedBundles
        restoredFrom = nil
        if changed { generation += 1 }
        return changed
    }

    /// Whether the last sync with the upstream succeeded; readiness tolerates a failure while SVIDs are valid.
    package private(set) var lastSyncSucceeded = false

    package mutating func markSyncAttempt(at time: Date) {
        lastSyncAttempt = time
    }

    package mutating func markSyncResult(succeeded: Bool) {
        lastSyncSucceeded = succeeded
        if succeeded {
            failingSince = nil
        } else if failingSince == nil {
            failingSince = lastSyncAttempt
        }
    }

    /// Whether every cached SVID is still valid at `now`.
    package func allSVIDsValid(at now: Date) -> Bool {
        svids.values.allSatisfy { $0.svid.expiresAt > now }
    }

    /// Entries with no SVID, an SVID minted for an older revision or other DNS names, or one due for renewal.
    package func entriesDue(at now: Date) -> [RegistrationEntry] {
        entries.filter { entry in
            guard let cached = svids[entry.id] else { return true }
            return cached.revision != entry.revision || cached.dnsNames != entry.dnsNames || now >= cached.renewAt
        }
    }

    /// The earliest renewal time among the cached SVIDs.
    package var nextRenewal: Date? { svids.values.map(\.renewAt).min() }

    package mutating func store(_ svid: IssuedSVID, for entry: RegistrationEntry, renewAt: Date) {
        guard entries.contains(where: { $0.id == entry.id }) else { return }
        svids[entry.id] = CachedSVID(svid: svid, renewAt: renewAt, revision: entry.revision, dnsNames: entry.dnsNames)
        generation += 1
    }

    /// Whether the bundle is known and every entry has its SVID: the agent is ready to serve.
    package var isPrimed: Bool { bundle != nil && entries.allSatisfy { svids[$0.id] != nil } }

    /// What a caller with `selectors` sees at `now`: its identities in entry order (SVIDs with a hint already used
    /// by an earlier identity are left out, since clients keep only the first), the bundle, and the federated
    /// bundles its entries federate with. An SVID that has expired is never in it: after a suspend or a clock step
    /// the cache can hold some until the next pass renews them.
    package func view(for selectors: Set<Selector>, at now: Date) -> CallerView {
        var identities: [CallerView.Identity] = []
        var hints: Set<String> = []
        var federated: [TrustDomain: SPIFFEBundle] = [:]
        // Indices, not `for entry in entries`: most entries do not match, and copying each one out of the array
        // retains and releases all its fields.
        for index in entries.indices where entries[index].matches(selectors) {
            let entry = entries[index]
            guard let cached = svids[entry.id], cached.svid.expiresAt > now else { continue }
            if !entry.hint.isEmpty {
                guard hints.insert(entry.hint).inserted else { continue }
            }
            identities.append(CallerView.Identity(entry: entry, svid: cached.svid))
            for trustDomain in entry.federatesWith {
                if let bundle = federatedBundles[trustDomain] { federated[trustDomain] = bundle }
            }
        }
        return CallerView(identities: identities, bundle: bundle, federatedBundles: federated)
    }

    /// The state as a snapshot; nil before the first sync (no bundle: nothing a restart could serve).
    package func snapshot(at now: Date) -> CacheSnapshot? {
        guard let bundle else { return nil }
        return CacheSnapshot(
            takenAt: now,
            entries: entries,
            bundle: bundle,
            federatedBundles: federatedBundles,
            svids: svids
        )
    }

    /// Takes the snapshot's entries and bundles, and those of its SVIDs that belong to one of its entries and are
    /// still valid at `now` (an expired one is never served; its entry is minted at the first sync). The upstream
    /// has not answered yet, so the last sync does not count as successful. Returns how many SVIDs were restored.
    @discardableResult
    package mutating func restore(_ snapshot: CacheSnapshot, at now: Date) -> Int {
        entries = snapshot.entries
        bundle = snapshot.bundle
        federatedBundles = snapshot.federatedBundles
        let ids = Set(snapshot.entries.map(\.id))
        svids = snapshot.svids.filter { ids.contains($0.key) && $0.value.svid.expiresAt > now }
        restoredFrom = snapshot.takenAt
        generation += 1
        return svids.count
    }

    /// Entries matching `selectors`, whether or not their SVID is minted yet.
    package func matchingEntries(_ selectors: Set<Selector>) -> [RegistrationEntry] {
        entries.filter { $0.matches(selectors) }
    }
}

/// Everything one caller may see at one moment.
package struct CallerView: Sendable, Equatable {
    package struct Identity: Sendable, Equatable {
        package let entry: RegistrationEntry
        package let svid: IssuedSVID
    }

    package let identities: [Identity]
    package let bundle: SPIFFEBundle?
    package let federatedBundles: [TrustDomain: SPIFFEBundle]
}
