import Logging
import Synchronization

/// Counts what each uid holds on the socket and refuses more than ``CallerLimits`` allow.
///
/// The transport asks before it keeps a connection or starts a stream and gives the slot back when that closes, so
/// one caller flooding the socket exhausts its own budget, not the agent's descriptors or memory.
final class CallerLimiter: Sendable {
    enum Resource: String, Sendable {
        case connection = "connections"
        case call = "calls"
    }

    let limits: CallerLimits
    private let logger: Logger
    private let held = Mutex<[Key: Int]>([:])
    /// The last refusal logged for each resource, so a flood writes a line per second, not one per attempt.
    private let lastLogged = Mutex<[Resource: ContinuousClock.Instant]>([:])

    private struct Key: Hashable {
        let uid: UInt32
        let resource: Resource
    }

    init(limits: CallerLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    /// Takes one `resource` slot for `uid`, or returns false (and logs) when the uid holds its limit already.
    func acquire(_ resource: Resource, uid: UInt32) -> Bool {
        let limit = resource == .connection ? limits.maxConnections : limits.maxCalls
        let key = Key(uid: uid, resource: resource)
        let granted = held.withLock { held in
            let count = held[key, default: 0]
            guard limit == 0 || count < limit else { return false }
            held[key] = count + 1
            return true
        }
        if !granted { logRefusal(resource, uid: uid, limit: limit) }
        return granted
    }

    /// Gives back a slot taken by ``acquire(_:uid:)``.
    func release(_ resource: Resource, uid: UInt32) {
        let key = Key(uid: uid, resource: resource)
        held.withLock { held in
            let count = held[key, default: 0] - 1
            held[key] = count > 0 ? count : nil
        }
    }

    /// What `uid` holds now (for tests and metrics).
    func count(_ resource: Resource, uid: UInt32) -> Int {
        held.withLock { $0[Key(uid: uid, resource: resource)] ?? 0 }
    }

    private func logRefusal(_ resource: Resource, uid: UInt32, limit: Int) {
        let now = ContinuousClock.now
        let shouldLog = lastLogged.withLock { last in
            if let previous = last[resource], previous.duration(to: now) < .seconds(1) { return false }
            last[resource] = now
            return true
        }
        guard shouldLog else { return }
        logger.warning(
            "caller refused: it holds its limit of \(resource.rawValue)",
            metadata: [
                "uid": "\(uid)", "limit": "\(limit)", "setting": "workload_api.max_\(resource.rawValue)_per_caller",
            ]
        )
    }
}
