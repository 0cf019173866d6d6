import Endpoints
import IdentityCache
import SPIFFE
import Synchronization

/// One ``WorkloadUpdate`` per distinct caller view, shared by every stream that sees that view.
///
/// A node's streams mostly come from replicas of a few workloads, so most see the same view. Without sharing,
/// each stream held its own PEM strings, bundle bytes and JWKS (~4 KB), and each cache change encoded them again
/// per stream. The last update is kept per selector set; a set's update is rebuilt only when its view changes.
final class SharedWorkloadUpdates: Sendable {
    /// Selector sets remembered at most; past it the memo starts over (it is only a cache of pure results).
    static let capacity = 256

    private let latest = Mutex<[Set<Selector>: (view: CallerView, update: WorkloadUpdate)]>([:])
    private let make: @Sendable (CallerView) -> WorkloadUpdate

    init(make: @escaping @Sendable (CallerView) -> WorkloadUpdate) {
        self.make = make
    }

    /// The update for `view`, seen by callers with `selectors`: the remembered one if the view is unchanged.
    func update(for view: CallerView, selectors: Set<Selector>) -> WorkloadUpdate {
        if let known = latest.withLock({ $0[selectors] }), known.view == view { return known.update }
        let update = make(view)
        latest.withLock { latest in
            if latest.count >= Self.capacity, latest[selectors] == nil { latest.removeAll(keepingCapacity: true) }
            latest[selectors] = (view, update)
        }
        return update
    }
}
