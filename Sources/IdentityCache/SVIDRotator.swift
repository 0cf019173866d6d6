package import Foundation
package import Logging
import Metrics
import SPIFFE
package import SPIFFECrypto
package import Timing

/// Keeps the cache current: syncs entries and bundles from the upstream, and mints an SVID for every entry that
/// lacks one or is due for renewal (a fresh key and CSR each time; the key never leaves the agent).
package struct SVIDRotator: Sendable {
    package let cache: IdentityCache
    package let upstream: any IdentityUpstream
    package let keyType: KeyType
    /// How often entries and bundles are re-read even when no renewal is due.
    package let syncInterval: Duration
    /// The wait after failed passes: doubling from the sync interval up to eight of them (at most a minute), ±20 %.
    package let backoff: Backoff
    let logger: Logger
    package let clock: any AgentClock
    /// Runs after every pass with the state it left, outside the cache's locks: the agent stores a snapshot and
    /// updates systemd's status there.
    let afterPass: @Sendable (CacheState) -> Void
    /// Passes asked for from outside the loop (``requestPass()``), which the loop runs.
    let requests = PassRequests()

    package init(
        cache: IdentityCache,
        upstream: any IdentityUpstream,
        keyType: KeyType = .ecP256,
        syncInterval: Duration = .seconds(5),
        logger: Logger,
        clock: any AgentClock = SystemClock(),
        afterPass: @escaping @Sendable (CacheState) -> Void = { _ in }
    ) {
        self.afterPass = afterPass
        self.cache = cache
        self.upstream = upstream
        self.keyType = keyType
        self.syncInterval = syncInterval
        self.backoff = Self.backoff(syncInterval: syncInterval)
        self.logger = logger
        self.clock = clock
    }

    /// The agent's one backoff after failed syncs, for a sync interval.
    package static func backoff(syncInterval: Duration) -> Backoff {
        Backoff(initial: syncInterval, maximum: min(syncInterval * 8, .seconds(60)), jitter: 0.2)
    }

    /// One pass: sync, then mint what is due. Errors are logged and retried on the next pass; cached SVIDs keep
    /// being served meanwhile. Returns how many SVIDs were minted.
    @discardableResult
    package func syncOnce(at time: Date) async -> Int {
        cache.update { state in
            state.markSyncAttempt(at: time)
            return false
        }
        do {
            let state = try await upstream.state(at: time)
            cache.update { cacheState in
                cacheState.markSyncResult(succeeded: true)
                return cacheState.apply(state)
            }
            Counter(label: "lanyard_upstream_sync_total", dimensions: [("result", "ok")]).increment()
        } catch {
            // A pass cut short by shutdown is not an upstream failure.
            if Task.isCancelled { return 0 }
            cache.update { cacheState in
                cacheState.markSyncResult(succeeded: false, error: "\(error)")
                return false
            }
            Counter(label: "lanyard_upstream_sync_total", dimensions: [("result", "error")]).increment()
            logger.warning("upstream sync failed; serving cached identities", metadata: [LogKey.error: "\(error)"])
            afterPass(cache.state)
            return 0
        }
        // Due entries in batches: keys and CSRs, one upstream call, then one cache update per batch. Bounded
        // batches keep the OpenSSL objects of only one batch alive at a time, so priming 10,000 entries does not
        // leave the heap fragmented at its peak, and streams see one update per batch instead of one per SVID.
        let minted = await mintInBatches(cache.state.entriesDue(at: time), at: time)
        recordGauges()
        afterPass(cache.state)
        return minted
    }

    /// Mints the SVIDs subscribers of a bounded cache are waiting for, without a sync: their first view costs one
    /// signing round trip, not a sync interval. Returns how many were minted. The snapshot is not stored here but
    /// by the next pass: with 10,000 entries a store costs tens of milliseconds, which every cold caller would wait.
    @discardableResult
    package func mintDemanded(at time: Date) async -> Int {
        let demanded = cache.state.demandedEntries(at: time)
        guard !demanded.isEmpty else { return 0 }
        return await mintInBatches(demanded, at: time)
    }

    private func mintInBatches(_ due: [RegistrationEntry], at time: Date) async -> Int {
        var minted = 0
        for start in stride(from: 0, to: due.count, by: Self.batchSize) {
            guard let count = await mint(due[start..<min(start + Self.batchSize, due.count)], at: time) else { break }
            minted += count
        }
        return minted
    }

    /// The most CSRs sent in one upstream call (and minted between two cache updates).
    package static let batchSize = 128

    /// Mints one batch; nil when the upstream call failed (the rest are retried on the next pass).
    private func mint(_ entries: ArraySlice<RegistrationEntry>, at time: Date) async -> Int? {
        var requests: [(X509SigningRequest, PrivateKey)] = []
        requests.reserveCapacity(entries.count)
        for entry in entries {
            do {
                let key = try PrivateKey(generating: keyType)
                let csr = try CertificateSigningRequest(
                    privateKey: key,
                    spiffeID: entry.spiffeID,
                    dnsNames: entry.dnsNames
                )
                requests.append((X509SigningRequest(entry: entry, csr: csr), key))
            } catch {
                logger.error(
                    "cannot make a key and csr",
                    metadata: [LogKey.spiffeID: "\(entry.spiffeID)", LogKey.error: "\(error)"]
                )
            }
        }
        guard !requests.isEmpty else { return 0 }
        let results: [Result<[Certificate], any Error>]
        do {
            results = try await upstream.signX509SVIDs(requests.map(\.0), at: time)
        } catch {
            logger.error(
                "x509-svid signing failed",
                metadata: [LogKey.count: "\(requests.count)", LogKey.error: "\(error)"]
            )
            return nil
        }
        var issued: [(svid: IssuedSVID, entry: RegistrationEntry, renewAt: Date)] = []
        issued.reserveCapacity(requests.count)
        for ((request, key), result) in zip(requests, results) {
            let entry = request.entry
            do {
                let svid = try X509SVID(certificates: result.get(), privateKey: key)
                guard svid.spiffeID == entry.spiffeID else {
                    throw CryptoError(.invalidX509SVID, "the upstream signed \(svid.spiffeID) for \(entry.spiffeID)")
                }
                // Lifetimes count from issuance: the certificate's backdated start would bring renewal forward.
                let renewAt = cache.policy.renewalTime(
                    notBefore: max(svid.leaf.notBefore, time),
                    notAfter: svid.leaf.notAfter,
                    jitter: Double.random(in: 0...1)
                )
                issued.append((try IssuedSVID(svid, spiffeID: entry.spiffeID), entry, renewAt))
                logger.debug(
                    "x509-svid minted",
                    metadata: [
                        LogKey.spiffeID: "\(entry.spiffeID)", LogKey.svidSerial: "\(svid.leaf.serialNumberHex)",
                        LogKey.svidExpiresAt: "\(svid.expiresAt)", LogKey.svidRenewAt: "\(renewAt)",
                    ]
                )
            } catch {
                logger.error(
                    "x509-svid minting failed",
                    metadata: [LogKey.spiffeID: "\(entry.spiffeID)", LogKey.error: "\(error)"]
                )
            }
        }
        guard !issued.isEmpty else { return 0 }
        let dropped = cache.store(issued)
        Counter(label: "lanyard_svid_rotations_total").increment(by: issued.count)
        if dropped > 0 { Counter(label: "lanyard_svid_cache_evictions_total").increment(by: dropped) }
        return issued.count
    }

    private func recordGauges() {
        let snapshot = cache.state
        Gauge(label: "lanyard_cache_entries").record(snapshot.entries.count)
        Gauge(label: "lanyard_cache_svids").record(snapshot.svids.count)
        Gauge(label: "lanyard_stream_subscribers").record(cache.subscriberCount)
        // One series, not one per SPIFFE ID: ten thousand identities must not mean ten thousand metrics.
        if let earliest = snapshot.svids.values.map(\.svid.expiresAt).min() {
            Gauge(label: "lanyard_svid_earliest_expiry_timestamp_seconds").record(earliest.timeIntervalSince1970)
        }
    }

    /// A pass as soon as the loop can run one (at once if it sleeps), for a reload; returns what that pass minted.
    /// Only ``run()`` runs passes while it runs, so a reload never races the loop's own pass.
    package func requestPass() async -> Int {
        await requests.pass()
    }

    /// Passes until cancelled, sleeping until the next renewal, the sync interval or a requested pass, whichever
    /// comes first. After a failed pass (upstream unreachable, or an SVID due that could not be minted) it backs
    /// off instead (``backoff``). Cancellation is the normal way to stop.
    ///
    /// `previousPass` is when a pass run just before (the agent's priming pass at start) began: the loop then starts
    /// with the wait that follows it instead of syncing again at once.
    package func run(afterPassAt previousPass: Date? = nil) async {
        var failures = 0
        var previousPass = previousPass
        defer {
            for request in requests.take() + cache.demands.take() { request.resume(returning: 0) }
        }
        while !Task.isCancelled {
            let started: Date
            if let previous = previousPass {
                started = previous
                previousPass = nil
            } else {
                let answered = requests.take() + cache.demands.take()
                started = clock.now
                let minted = await syncOnce(at: started)
                for request in answered { request.resume(returning: minted) }
            }
            // Entries due at the pass's own time that are still due were not minted; ones due since are not failures.
            let healthy = cache.state.lastSyncSucceeded && cache.state.entriesDue(at: started).isEmpty
            failures = healthy ? 0 : failures + 1
            var wait = syncInterval
            if !healthy {
                wait = backoff.delay(afterFailures: failures)
            } else if let next = cache.state.nextRenewal {
                let untilRenewal = Duration.milliseconds(Int64(next.timeIntervalSince(clock.now) * 1000))
                wait = min(wait, max(.milliseconds(50), untilRenewal))
            }
            // Until the next pass, serve on-demand mints as they come.
            let deadline = clock.now.addingTimeInterval(wait.timeInterval)
            while !Task.isCancelled {
                let remaining = deadline.timeIntervalSince(clock.now)
                guard remaining > 0, await sleep(for: .seconds(remaining)) == .demand, !Task.isCancelled else { break }
                let demanders = cache.demands.take()
                let minted = await mintDemanded(at: clock.now)
                for demander in demanders { demander.resume(returning: minted) }
                if minted > 0 { recordGauges() }
            }
        }
    }

    private enum Wake: Sendable { case timeout, pass, demand }

    /// Sleeps for `wait` on the clock, or less when a pass or an on-demand mint is requested meanwhile.
    private func sleep(for wait: Duration) async -> Wake {
        let clock = clock
        let requests = requests
        let demands = cache.demands
        return await withTaskGroup(of: Wake.self) { group in
            group.addTask {
                try? await clock.sleep(for: wait)
                return .timeout
            }
            group.addTask {
                await requests.waitForRequest()
                return .pass
            }
            group.addTask {
                await demands.waitForRequest()
                return .demand
            }
            let wake = await group.next() ?? .timeout
            group.cancelAll()
            return wake
        }
    }
}
