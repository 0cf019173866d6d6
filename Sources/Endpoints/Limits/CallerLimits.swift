/// How much of the socket one caller may hold at a time. A caller is a uid, the unit the kernel vouches for: a
/// process can fork or reconnect at will, but not change its uid. Zero turns a limit off.
///
/// Every process of a uid shares its budget, so uids that many pods share (root, Istio's 1337 for every Envoy) need
/// room for all of them: the defaults fit about 250 sidecars, each with a connection and a few streams.
public struct CallerLimits: Sendable, Equatable {
    /// Open connections per uid (`workload_api.max_connections_per_caller`).
    public var maxConnections: Int
    /// Calls in progress per uid, streams included (`workload_api.max_calls_per_caller`).
    public var maxCalls: Int

    public static let defaults = CallerLimits(maxConnections: 512, maxCalls: 2048)

    public init(maxConnections: Int, maxCalls: Int) {
        self.maxConnections = maxConnections
        self.maxCalls = maxCalls
    }
}
