public import Foundation

/// `GET /v1/status` (`lanyard status --json`): what the agent is doing now, in more detail than `/ready` and
/// `STATUS=` tell. Field names are the JSON keys in snake case; the document is versioned by `api_version`.
public struct StatusReport: Codable, Sendable, Equatable {
    /// The upstream: the embedded CA, or SPIRE Server and the agent's standing with it.
    public struct Upstream: Codable, Sendable, Equatable {
        /// `local` or `spire`.
        public var kind: String
        public var serverAddress: String?
        public var agentId: String?
        public var agentSvidExpiry: Date?
        public var lastSyncAttempt: Date?
        public var lastSuccessfulSync: Date?
        /// The last failed sync's error, kept after later successes.
        public var lastError: String?
        /// Since when syncs fail; absent while the last one succeeded.
        public var failingSince: Date?
        /// When the snapshot the agent serves from was taken, until the upstream has answered.
        public var servingSnapshotOf: Date?
    }

    /// A root of the embedded CA (standalone mode).
    public struct CAGeneration: Codable, Sendable, Equatable {
        public var notBefore: Date
        public var notAfter: Date
        public var signing: Bool
    }

    /// What one uid holds on the Workload API socket, against `max_connections_per_caller`/`max_calls_per_caller`.
    public struct CallerUsage: Codable, Sendable, Equatable {
        public var uid: UInt32
        public var connections: Int
        public var calls: Int
    }

    public var apiVersion: String
    public var version: String
    public var startedAt: Date
    public var uptimeSeconds: Double
    /// `standalone` or `fleet`.
    public var mode: String
    public var trustDomain: String
    public var ready: Bool
    public var readiness: String
    public var logLevel: String
    public var entries: Int
    public var svidsCached: Int
    /// `x509_svid_cache_max_size`, when set.
    public var svidCacheLimit: Int?
    public var earliestSvidExpiry: Date?
    /// Open Workload API and SDS streams.
    public var streams: Int
    /// Calls being answered now, by method (`FetchX509SVID`, `StreamSecrets`…): open streams, mostly.
    public var openCallsByMethod: [String: Int]
    public var connections: Int
    public var maxConnectionsPerCaller: Int
    public var maxCallsPerCaller: Int
    public var callers: [CallerUsage]
    public var caGenerations: [CAGeneration]?
    public var upstream: Upstream

    /// The text `lanyard status` prints.
    public var text: String {
        var lines = [
            "lanyard \(version), up \(Self.duration(uptimeSeconds)) (since \(Self.format(startedAt)))",
            "mode:          \(mode), trust domain \(trustDomain)",
            "readiness:     \(readiness)",
            "log level:     \(logLevel)",
            "entries:       \(entries), SVIDs cached \(svidsCached)"
                + (svidCacheLimit.map { " of at most \($0)" } ?? "")
                + (earliestSvidExpiry.map { ", earliest expiry \(Self.format($0))" } ?? ""),
            "workload api:  \(connections) connections, \(streams) streams"
                + " (per uid at most \(maxConnectionsPerCaller) connections, \(maxCallsPerCaller) calls)",
        ]
        for (method, count) in openCallsByMethod.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(method): \(count) open")
        }
        for caller in callers {
            lines.append("  uid \(caller.uid): \(caller.connections) connections, \(caller.calls) calls")
        }
        if upstream.kind == "spire" {
            lines.append("upstream:      spire server \(upstream.serverAddress ?? "?")")
            if let agent = upstream.agentId {
                lines.append(
                    "  agent:       \(agent)"
                        + (upstream.agentSvidExpiry.map { ", SVID expires \(Self.format($0))" } ?? "")
                )
            }
        } else {
            lines.append("upstream:      embedded CA")
        }
        lines.append("  last sync:   " + (upstream.lastSyncAttempt.map(Self.format) ?? "never"))
        lines.append("  last success: " + (upstream.lastSuccessfulSync.map(Self.format) ?? "never"))
        if let failing = upstream.failingSince { lines.append("  failing since: \(Self.format(failing))") }
        if let error = upstream.lastError { lines.append("  last error:  \(error)") }
        if let snapshot = upstream.servingSnapshotOf {
            lines.append("  serving the snapshot of \(Self.format(snapshot))")
        }
        for generation in caGenerations ?? [] {
            lines.append(
                "CA root:       \(Self.format(generation.notBefore)) to \(Self.format(generation.notAfter))"
                    + (generation.signing ? " (signing)" : "")
            )
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ date: Date) -> String {
        ISO8601DateFormatter.string(from: date, timeZone: .gmt, formatOptions: [.withInternetDateTime])
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        if total < 120 { return "\(total)s" }
        if total < 7200 { return "\(total / 60)m" }
        return "\(total / 3600)h\(total % 3600 / 60)m"
    }
}
