import Synchronization
import Timing

/// A short-lived cache of uid and gid names. Renaming an account takes effect within ``lifetime``; selectors by
/// number (`unix:uid`) never depend on it.
final class AccountNames: Sendable {
    private struct Cached {
        var name: String?
        /// The clock's uptime when the name goes stale.
        var until: Duration
    }

    static let lifetime: Duration = .seconds(10)
    private let users = Mutex<[UInt32: Cached]>([:])
    private let groups = Mutex<[UInt32: Cached]>([:])
    private let clock: any AgentClock

    init(clock: any AgentClock = SystemClock()) {
        self.clock = clock
    }

    func user(_ uid: UInt32, lookUp: (UInt32) -> String?) -> String? { name(uid, in: users, lookUp: lookUp) }

    func group(_ gid: UInt32, lookUp: (UInt32) -> String?) -> String? { name(gid, in: groups, lookUp: lookUp) }

    private func name(_ id: UInt32, in table: borrowing Mutex<[UInt32: Cached]>, lookUp: (UInt32) -> String?) -> String?
    {
        let now = clock.uptime
        if let cached = table.withLock({ $0[id] }), cached.until > now { return cached.name }
        let name = lookUp(id)
        table.withLock { table in
            // Bounded: a node has few accounts, but a caller could cycle through many ids.
            if table.count > 4096 { table.removeAll() }
            table[id] = Cached(name: name, until: now + Self.lifetime)
        }
        return name
    }
}
