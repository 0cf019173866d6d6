/// How much of the socket callers may hold at a time. A caller is a uid, the unit the kernel vouches for: a process
/// can fork or reconnect at will, but not change its uid. Zero turns a limit off.
///
/// Every process of a uid shares its budget, so uids that many pods share (root, Istio's 1337 for every Envoy) need
/// room for all of them: the defaults fit about 250 sidecars, each with a connection and a few streams. Above the
/// per-uid budgets, ``maxTotalConnections`` keeps every caller together below the agent's descriptor limit, with
/// ``rootReserve`` of it that only root may use, so several uids each within their budget cannot lock root (or the
/// agent's own files and upstream connections) out.
public struct CallerLimits: Sendable, Equatable {
    /// Open connections per uid (`workload_api.max_connections_per_caller`).
    public var maxConnections: Int
    /// Calls in progress per uid, streams included (`workload_api.max_calls_per_caller`).
    public var maxCalls: Int
    /// Open connections of all callers together (`workload_api.max_connections`; the agent derives it from its
    /// descriptor limit when the setting is 0).
    public var maxTotalConnections: Int

    /// Connections under ``maxTotalConnections`` that callers other than root may not take.
    public static let rootReserve = 64

    public static let defaults = CallerLimits(maxConnections: 512, maxCalls: 2048, maxTotalConnections: 0)

    public init(maxConnections: Int, maxCalls: Int, maxTotalConnections: Int = 0) {
        self.maxConnections = maxConnections
        self.maxCalls = maxCalls
        self.maxTotalConnections = maxTotalConnections
    }
}
