package import Foundation
package import SPIFFE
import SPIFFECrypto
import Synchronization

/// The agent's one source of identities: ``CacheState`` behind a `Mutex`, and the streams subscribed to it.
///
/// Every change is pushed at once to every subscriber as a full view; a subscriber that reads slowly sees only
/// the newest view, never a backlog.
///
/// With `x509_svid_cache_max_size` (``CacheState/svidLimit``) a new subscriber whose entries have no SVID yet
/// demands them (``demands``) and gets its first view once the rotator has minted them: one signing round trip.
package final class IdentityCache: Sendable {
    private struct Subscriber {
        let selectors: Set<Selector>
        let deliver: @Sendable (CallerView) -> Void
        let finish: @Sendable () -> Void
        /// Waiting for an on-demand mint before its first view; updates skip it until then.
        var awaitsFirstView: Bool
    }

    private struct Guarded {
        var state: CacheState
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriberID: UInt64 = 0
        /// Set by ``finishAll()``: later subscribers get a stream that ends at once, so shutdown cannot hang on them.
        var isFinished = false
    }

    private let guarded: Mutex<Guarded>
    /// Held while views are computed and delivered, outside `guarded`, so deliveries keep their order while readers
    /// of the state (every RPC) never wait for them. Holds the view each selector set was last sent.
    private let delivery = Mutex<[Set<Selector>: CallerView]>([:])
    /// The entries generation the JWT-SVID cache was last trimmed against (written under `delivery`).
    private let trimmedEntries = Atomic<UInt64>(.max)
    package let policy: RenewalPolicy
    /// Minted JWT-SVIDs; bounded, and outside the state lock (storing one notifies nobody).
    package let jwtSVIDs: JWTSVIDCache
    /// The wall clock views are computed at, so an expired SVID is never in one.
    private let now: @Sendable () -> Date
    /// On-demand mints asked of the rotator by subscribers whose SVIDs are not held (bounded cache only).
    package let demands = PassRequests()

    package init(
        policy: RenewalPolicy = RenewalPolicy(),
        jwtSVIDCacheSize: Int = 1000,
        svidLimit: Int? = nil,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.guarded = Mutex(Guarded(state: CacheState(svidLimit: svidLimit)))
        self.policy = policy
        self.jwtSVIDs = JWTSVIDCache(maximumEntries: jwtSVIDCacheSize, policy: policy)
        self.now = now
    }

    /// A copy of the state, for reads that need several fields at once.
    package var state: CacheState { guarded.withLock { $0.state } }

    /// Runs `body` on the state and, if it says something changed, sends each subscriber its new view.
    ///
    /// A view is computed once per distinct selector set (a node's many replicas of one workload share theirs), and
    /// sent only when it differs from the last one sent for that set: renewing one entry's SVID reaches only the
    /// callers that see it. Before this, every change recomputed a view per stream while holding the state lock, and
    /// 1,000 streams with 200 rotating entries kept two cores busy and starved unary calls (`make load` found it).
    package func update(_ body: (inout CacheState) -> Bool) {
        update { (guarded: inout Guarded) in body(&guarded.state) }
    }

    /// Stores freshly minted SVIDs and, in a bounded cache, drops the least recently used beyond the limit, sparing
    /// those an open stream sees. Returns how many were dropped.
    @discardableResult
    package func store(_ minted: [(svid: IssuedSVID, entry: RegistrationEntry, renewAt: Date)]) -> Int {
        var dropped = 0
        update { (guarded: inout Guarded) in
            for (svid, entry, renewAt) in minted { guarded.state.store(svid, for: entry, renewAt: renewAt) }
            if let limit = guarded.state.svidLimit, guarded.state.svids.count > limit {
                var protected: Set<String> = []
                for selectors in Set(guarded.subscribers.values.map(\.selectors)) {
                    protected.formUnion(guarded.state.matchingEntries(selectors).map(\.id))
                }
                dropped = guarded.state.evictBeyondLimit(protecting: protected)
            }
            return true
        }
        return dropped
    }

    private func update(_ body: (inout Guarded) -> Bool) {
        delivery.withLock { lastSent in
            let changed: (state: CacheState, subscribers: [Subscriber])? = guarded.withLock { guarded in
                guard body(&guarded) else { return nil }
                return (guarded.state, guarded.subscribers.values.filter { !$0.awaitsFirstView })
            }
            guard let changed else { return }
            let time = now()
            if trimmedEntries.exchange(changed.state.entriesGeneration, ordering: .relaxed)
                != changed.state.entriesGeneration
            {
                jwtSVIDs.retain(spiffeIDs: Set(changed.state.entries.map(\.spiffeID)))
            }
            var views: [Set<Selector>: (view: CallerView, isNew: Bool)] = [:]
            for subscriber in changed.subscribers {
                let computed: (view: CallerView, isNew: Bool)
                if let known = views[subscriber.selectors] {
                    computed = known
                } else {
                    let view = changed.state.view(for: subscriber.selectors, at: time)
                    computed = (view, lastSent[subscriber.selectors] != view)
                    views[subscriber.selectors] = computed
                }
                if computed.isNew { subscriber.deliver(computed.view) }
            }
            lastSent = views.mapValues(\.view)
        }
    }

    /// A stream of the caller's view, shaped by `transform`: the current one at once, then one after every change.
    /// A slow reader finds only the newest.
    package func subscribe<Element: Sendable>(
        selectors: Set<Selector>,
        transform: @escaping @Sendable (CallerView) -> Element
    ) -> AsyncStream<Element> {
        let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: .bufferingNewest(1))
        subscribe(selectors: selectors, continuation: continuation, transform: transform)
        return stream
    }

    /// Feeds `continuation` the caller's view, shaped by `transform`, until it is finished or its stream ends. The
    /// continuation's stream should buffer only the newest element.
    package func subscribe<Element: Sendable>(
        selectors: Set<Selector>,
        continuation: AsyncStream<Element>.Continuation,
        transform: @escaping @Sendable (CallerView) -> Element
    ) {
        let subscriber = Subscriber(
            selectors: selectors,
            deliver: { continuation.yield(transform($0)) },
            finish: { continuation.finish() },
            awaitsFirstView: true
        )
        let added: (id: UInt64, cold: Bool)? = guarded.withLock { guarded in
            guard !guarded.isFinished else { return nil }
            let id = guarded.nextSubscriberID
            guarded.nextSubscriberID += 1
            guarded.subscribers[id] = subscriber
            return (id, guarded.state.use(by: selectors, at: now()))
        }
        guard let added else {
            continuation.finish()
            return
        }
        let id = added.id
        // The first view of a cold subscriber waits for the rotator's on-demand mint (its SVIDs, or its failure:
        // then the view says what is held, and the Workload API tells the caller to retry).
        let firstView: Task<Void, Never>? =
            added.cold
            ? Task { [weak self, demands] in
                _ = await demands.pass()
                self?.deliverFirstView(to: id)
            } : nil
        if !added.cold { deliverFirstView(to: id) }
        continuation.onTermination = { [weak self] _ in
            firstView?.cancel()
            _ = self?.guarded.withLock { $0.subscribers.removeValue(forKey: id) }
        }
    }

    /// Sends a new subscriber its first view, in order with other deliveries. The view is computed from a copy of
    /// the state outside the state lock, so readers (every RPC) never wait for it; updates skipped the subscriber
    /// until now and wait for the delivery lock held here, so none is lost or sent out of order.
    private func deliverFirstView(to id: UInt64) {
        delivery.withLock { lastSent in
            let pending: (subscriber: Subscriber, state: CacheState)? = guarded.withLock { guarded in
                guard var subscriber = guarded.subscribers[id], subscriber.awaitsFirstView else { return nil }
                subscriber.awaitsFirstView = false
                guarded.subscribers[id] = subscriber
                return (subscriber, guarded.state)
            }
            guard let pending else { return }
            let view = pending.state.view(for: pending.subscriber.selectors, at: now())
            lastSent[pending.subscriber.selectors] = view
            pending.subscriber.deliver(view)
        }
    }

    package var subscriberCount: Int { guarded.withLock { $0.subscribers.count } }

    /// Ends every stream, and every later one at once, for shutdown.
    package func finishAll() {
        let subscribers = guarded.withLock { guarded in
            guarded.isFinished = true
            defer { guarded.subscribers.removeAll() }
            return Array(guarded.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
