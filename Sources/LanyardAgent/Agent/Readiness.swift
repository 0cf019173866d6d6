import Foundation
import IdentityCache
import Synchronization

/// What `/ready` reports: the socket serves, the cache is primed, and the upstream answers or every cached SVID is
/// still valid (an upstream outage does not make a node unready while its workloads keep valid identities).
final class Readiness: Sendable {
    private let serving = Mutex(false)
    let cache: IdentityCache

    init(cache: IdentityCache) {
        self.cache = cache
    }

    func markServing(_ value: Bool) { serving.withLock { $0 = value } }

    var isServing: Bool { serving.withLock { $0 } }

    func check(at now: Date) -> (ready: Bool, reason: String) {
        guard serving.withLock({ $0 }) else { return (false, "not ready: the workload api socket is not serving") }
        let state = cache.state
        guard state.isPrimed else { return (false, "not ready: the identity cache is not primed") }
        guard state.lastSyncSucceeded || state.allSVIDsValid(at: now) else {
            return (false, "not ready: the upstream is unreachable and cached svids have expired")
        }
        return (true, "ready: serving \(state.svids.count) identities")
    }
}
