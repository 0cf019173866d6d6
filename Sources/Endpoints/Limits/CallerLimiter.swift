import Logging
import SPIFFE
import Synchronization
import Timing

/// Counts what each uid holds on the socket and refuses more than ``CallerLimits`` allow.
///
/// The transport asks before it keeps a connection or starts a stream and gives the slot back when that closes, so
/// one caller flooding the socket exhausts its own budget, not the agent's descriptors or memory; and all callers
/// together stay below the agent's descriptor limit, with room kept for root.
final class CallerLimiter: Sendable {
    enum Resource: String, Sendable {
        case connection = "connections"
        case call = "calls"
    }

    let limits: CallerLimits
    private let logger: Logger
    private struct Held {
        var byCaller: [Key: Int] = [:]
        var connections = 0
    }
    private let held = Mutex(Held())
    private let throttle: LogThrottle

    private struct Key: Hashable {
        let uid: UInt32
        let resource: Resource
    }

    init(limits: CallerLimits, logger: Logger, clock: any AgentClock = SystemClock()) {
        self.limits = limits
        self.logger = logger
        self.throttle = LogThrottle(clock: clock)
    }

    /// Takes one `resource` slot for `uid`, or returns false (and logs) when the uid holds its limit already, or
    /// (connections) when every caller together holds theirs.
    func acquire(_ resource: Resource, uid: UInt32) -> Bool {
        let limit = resource == .connection ? limits.maxConnections : limits.maxCalls
        let key = Key(uid: uid, resource: resource)
        var total = limits.maxTotalConnections
        if total > 0 && uid != 0 { total = max(1, total - CallerLimits.rootReserve) }
        let refusal: String? = held.withLock { held in
            let count = held.byCaller[key, default: 0]
            guard limit == 0 || count < limit else { return "per_caller" }
            if resource == .connection {
                guard total == 0 || held.connections < total else { return "total" }
                held.connections += 1
            }
            held.byCaller[key] = count + 1
            return nil
        }
        if let refusal { logRefusal(resource, uid: uid, overall: refusal == "total", limit: limit) }
        return refusal == nil
    }

    /// Gives back a slot taken by ``acquire(_:uid:)``.
    func release(_ resource: Resource, uid: UInt32) {
        let key = Key(uid: uid, resource: resource)
        held.withLock { held in
            let count = held.byCaller[key, default: 0] - 1
            held.byCaller[key] = count > 0 ? count : nil
            if resource == .connection { held.connections = max(0, held.connections - 1) }
        }
    }

    /// What `uid` holds now (for tests and metrics).
    func count(_ resource: Resource, uid: UInt32) -> Int {
        held.withLock { $0.byCaller[Key(uid: uid, resource: resource)] ?? 0 }
    }

    /// What every uid holds now: connections and calls.
    func usage() -> [UInt32: (connections: Int, calls: Int)] {
        held.withLock { held in
            var usage: [UInt32: (connections: Int, calls: Int)] = [:]
            for (key, count) in held.byCaller {
                var entry = usage[key.uid] ?? (0, 0)
                if key.resource == .connection { entry.connections = count } else { entry.calls = count }
                usage[key.uid] = entry
            }
            return usage
        }
    }

    /// Open connections of every caller.
    var totalConnections: Int { held.withLock { $0.connections } }

    private func logRefusal(_ resource: Resource, uid: UInt32, overall: Bool, limit: Int) {
        let (log, suppressed) = throttle.admit(overall ? "total" : resource.rawValue)
        guard log else { return }
        if overall {
            logger.warning(
                "caller refused: all callers together hold the connection limit",
                metadata: [
                    LogKey.callerUID: "\(uid)", LogKey.limit: "\(limits.maxTotalConnections)",
                    LogKey.setting: "workload_api.max_connections",
                    LogKey.refusalsSuppressed: "\(suppressed)",
                ]
            )
        } else {
            logger.warning(
                "caller refused: it holds its limit of \(resource.rawValue)",
                metadata: [
                    LogKey.callerUID: "\(uid)", LogKey.limit: "\(limit)",
                    LogKey.setting: "workload_api.max_\(resource.rawValue)_per_caller",
                    LogKey.refusalsSuppressed: "\(suppressed)",
                ]
            )
        }
    }
}
