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
    /// `x509_svid_cache_max_size`: at most this many SVIDs are held, and only entries a caller asked for are minted;
    /// nil mints every entry ahead of its first caller.
    package let svidLimit: Int?
    /// Entries a caller waits for or a stream needs whose SVID is not held (bounded cache only): the next pass or
    /// on-demand mint signs them.
    package private(set) var demanded: Set<String> = []
    /// Where each entry is in `entries`, by ID.
    private var entryPositions: [String: Int] = [:]
    /// Each entry's position under its rarest selector: an entry can match only a caller holding that selector, so a
    /// caller's candidates are found through its own selectors, not by scanning every entry. Keying by the rarest
    /// selector keeps a selector most entries share (`k8s:ns:default`, `unix:gid:0`) from making every entry a
    /// candidate.
    private var selectorIndex: [Selector: [Int]] = [:]
    /// Grows whenever the entries change (not the SVIDs): what the JWT-SVID cache is trimmed against.
    package private(set) var entriesGeneration: UInt64 = 0
    /// When each entry was last in a caller's view, as a counter: the bounded cache drops the least recently used.
    private var lastUsed: [String: UInt64] = [:]
    private var useClock: UInt64 = 0

    package init(svidLimit: Int? = nil) {
        self.svidLimit = svidLimit
    }

    /// Applies what the upstream says. SVIDs of removed entries are dropped. Returns whether anything a workload
    /// sees changed.
    package mutating func apply(_ state: UpstreamState) -> Bool {
        let ids = Set(state.entries.map(\.id))
        let removed = svids.keys.filter { !ids.contains($0) }
        for id in removed { svids[id] = nil }
        demanded.formIntersection(ids)
        lastUsed = lastUsed.filter { ids.contains($0.key) }
        let changed =
            entries != state.entries || bundle != state.bundle || federatedBundles != state.federatedBundles
            || !removed.isEmpty
        if entries != state.entries { setEntries(state.entries) }
        bundle = state.bundle
        federatedBundles = state.federatedBundles
        restoredFrom = nil
        if changed { generation += 1 }
        return changed
    }

    private mutating func setEntries(_ new: [RegistrationEntry]) {
        entries = new
        entryPositions = Dictionary(new.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        var frequency: [Selector: Int] = [:]
        for entry in new { for selector in entry.selectors { frequency[selector, default: 0] += 1 } }
        selectorIndex = [:]
        for (position, entry) in new.enumerated() {
            let rarest = entry.selectors.min {
                (frequency[$0, default: 0], $0.description) < (frequency[$1, default: 0], $1.description)
            }
            guard let key = rarest else { continue }
            selectorIndex[key, default: []].append(position)
        }
        entriesGeneration += 1
    }

    /// The positions of the entries `selectors` match, in entry order. Costs in proportion to the caller's
    /// selectors and the entries indexed under them, not to all entries.
    package func matchingPositions(_ selectors: Set<Selector>) -> [Int] {
        candidatePositions(selectors).filter { entries[$0].matches(selectors) }
    }

    /// The entries a caller with `selectors` could match, in entry order: those indexed under one of its selectors.
    /// The only entries `matchingPositions` examines.
    package func candidatePositions(_ selectors: Set<Selector>) -> [Int] {
        var positions: [Int] = []
        for selector in selectors { positions += selectorIndex[selector] ?? [] }
        positions.sort()
        return positions
    }

    /// Whether the last sync with the upstream succeeded; readiness tolerates a failure while SVIDs are valid.
    package private(set) var lastSyncSucceeded = false

    package mutating func markSyncAttempt(at time: Date) {
        lastSyncAttempt = time
    }

    /// When a sync last succeeded, and what the last failure said (for `lanyard status`).
    package private(set) var lastSuccessfulSync: Date? = nil
    package private(set) var lastSyncError: String? = nil

    package mutating func markSyncResult(succeeded: Bool, error: String? = nil) {
        lastSyncSucceeded = succeeded
        if succeeded {
            failingSince = nil
            lastSuccessfulSync = lastSyncAttempt
        } else {
            lastSyncError = error
            if failingSince == nil { failingSince = lastSyncAttempt }
        }
    }

    /// Whether every cached SVID is still valid at `now`.
    package func allSVIDsValid(at now: Date) -> Bool {
        svids.values.allSatisfy { $0.svid.expiresAt > now }
    }

    /// Entries with an SVID minted for an older revision or other DNS names, or one due for renewal, and those with
    /// none (in a bounded cache, only those a caller asked for).
    package func entriesDue(at now: Date) -> [RegistrationEntry] {
        entries.filter { entry in
            guard let cached = svids[entry.id] else { return svidLimit == nil || demanded.contains(entry.id) }
            return cached.revision != entry.revision || cached.dnsNames != entry.dnsNames || now >= cached.renewAt
        }
    }

    /// Demanded entries that still lack a valid SVID: what an on-demand mint signs.
    package func demandedEntries(at now: Date) -> [RegistrationEntry] {
        demanded.sorted().compactMap { id in
            guard let position = entryPositions[id], !holdsValidSVID(id, at: now) else {
                return nil
            }
            return entries[position]
        }
    }

    /// Whether entry `id` has an SVID that is still valid at `now`.
    private func holdsValidSVID(_ id: String, at now: Date) -> Bool {
        svids[id].map { $0.svid.expiresAt > now } ?? false
    }

    /// Records that a caller with `selectors` is served now, and, in a bounded cache, demands the SVIDs it lacks.
    /// Returns whether any are demanded (the caller should wait for an on-demand mint before its first view).
    package mutating func use(by selectors: Set<Selector>, at now: Date) -> Bool {
        guard svidLimit != nil else { return false }
        var cold = false
        for index in matchingPositions(selectors) {
            let id = entries[index].id
            useClock += 1
            lastUsed[id] = useClock
            if !holdsValidSVID(id, at: now) {
                demanded.insert(id)
                cold = true
            }
        }
        return cold
    }

    /// Drops SVIDs beyond the limit, least recently used first, sparing `protected` (entries an open stream sees)
    /// unless those alone exceed it: the bound is hard. Returns how many were dropped.
    package mutating func evictBeyondLimit(protecting protected: Set<String>) -> Int {
        guard let svidLimit, svids.count > svidLimit else { return 0 }
        let order = svids.keys.sorted { a, b in
            let (aProtected, bProtected) = (protected.contains(a), protected.contains(b))
            if aProtected != bProtected { return bProtected }
            return lastUsed[a, default: 0] < lastUsed[b, default: 0]
        }
        let excess = svids.count - svidLimit
        for id in order.prefix(excess) { svids[id] = nil }
        generation += 1
        return excess
    }

    /// The earliest renewal time among the cached SVIDs.
    package var nextRenewal: Date? { svids.values.map(\.renewAt).min() }

    package mutating func store(_ svid: IssuedSVID, for entry: RegistrationEntry, renewAt: Date) {
        guard entryPositions[entry.id] != nil else { return }
        svids[entry.id] = CachedSVID(svid: svid, renewAt: renewAt, revision: entry.revision, dnsNames: entry.dnsNames)
        demanded.remove(entry.id)
        generation += 1
    }

    /// Whether the bundle is known and every entry has its SVID (in a bounded cache, the bundle alone: entries are
    /// minted when asked for): the agent is ready to serve.
    package var isPrimed: Bool {
        bundle != nil && (svidLimit != nil || entries.allSatisfy { svids[$0.id] != nil })
    }

    /// What a caller with `selectors` sees at `now`: its identities in entry order (SVIDs with a hint already used
    /// by an earlier identity are left out, since clients keep only the first), the bundle, and the federated
    /// bundles its entries federate with. An SVID that has expired is never in it: after a suspend or a clock step
    /// the cache can hold some until the next pass renews them.
    package func view(for selectors: Set<Selector>, at now: Date) -> CallerView {
        var identities: [CallerView.Identity] = []
        var hints: Set<String> = []
        var federated: [TrustDomain: SPIFFEBundle] = [:]
        for index in matchingPositions(selectors) {
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
        setEntries(snapshot.entries)
        bundle = snapshot.bundle
        federatedBundles = snapshot.federatedBundles
        let ids = Set(snapshot.entries.map(\.id))
        svids = snapshot.svids.filter { ids.contains($0.key) && $0.value.svid.expiresAt > now }
        if let svidLimit, svids.count > svidLimit {
            // A snapshot from a larger cache: keep the SVIDs that stay valid longest.
            let kept = svids.sorted { $0.value.svid.expiresAt > $1.value.svid.expiresAt }.prefix(svidLimit)
            svids = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
        }
        restoredFrom = snapshot.takenAt
        generation += 1
        return svids.count
    }

    /// Entries matching `selectors`, whether or not their SVID is minted yet.
    package func matchingEntries(_ selectors: Set<Selector>) -> [RegistrationEntry] {
        matchingPositions(selectors).map { entries[$0] }
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
