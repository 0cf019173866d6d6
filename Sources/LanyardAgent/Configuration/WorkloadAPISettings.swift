public import Endpoints
import Foundation

/// `[workload_api]`: the socket and what callers may hold on it.
public struct WorkloadAPISettings: Sendable, Equatable {
    public var socketPath: String
    /// Callers without an identity may read the bundles (`allow_unauthenticated_verifiers`).
    public var allowUnauthenticatedVerifiers: Bool
    /// `max_connections_per_caller`, `max_calls_per_caller` and `max_connections` (0: derived from the descriptor
    /// limit at start).
    public var callerLimits: CallerLimits
    /// `connection_idle_timeout`: a connection with no call open this long is closed; nil never.
    public var connectionIdleTimeout: Duration?

    /// `sun_path` holds 108 bytes including the terminating NUL.
    static let maximumSocketPathLength = 107

    static func read(_ section: SectionReader) -> WorkloadAPISettings {
        let socketPath = section.string("socket_path", default: "/run/lanyard/public/api.sock")
        checkSocketPath(socketPath, section)
        func limit(_ key: String, _ value: Int) -> Int {
            section.integer(
                key,
                in: 0...1_000_000,
                default: value,
                describe: "must be between 0 (no limit) and 1000000, not \(section.integer(key) ?? 0)"
            )
        }
        var idleTimeout: Duration? = .seconds(300)
        if section.has("connection_idle_timeout") {
            let parsed = section.duration("connection_idle_timeout", allowZero: true)
            idleTimeout = parsed == .zero ? nil : parsed ?? idleTimeout
        }
        return WorkloadAPISettings(
            socketPath: socketPath,
            allowUnauthenticatedVerifiers: section.bool("allow_unauthenticated_verifiers", default: false),
            callerLimits: CallerLimits(
                maxConnections: limit("max_connections_per_caller", CallerLimits.defaults.maxConnections),
                maxCalls: limit("max_calls_per_caller", CallerLimits.defaults.maxCalls),
                maxTotalConnections: limit("max_connections", 0)
            ),
            connectionIdleTimeout: idleTimeout
        )
    }

    private static func checkSocketPath(_ path: String, _ section: SectionReader) {
        let key = "socket_path"
        guard path.hasPrefix("/") else { return section.problem(key, "must be an absolute path") }
        guard path.utf8.count <= maximumSocketPathLength else {
            return section.problem(
                key,
                "is \(path.utf8.count) bytes; a unix socket path holds at most \(maximumSocketPathLength)"
            )
        }
        // The socket is first bound at <directory>/.lanyard-XXXXXXX/s, at most 20 bytes longer than the directory.
        let directory = (path as NSString).deletingLastPathComponent
        guard directory.utf8.count + 20 <= maximumSocketPathLength else {
            let limit = maximumSocketPathLength - 20
            return section.problem(
                key,
                "its directory is \(directory.utf8.count) bytes; at most \(limit) leaves room to bind"
            )
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            let type = (try? FileManager.default.attributesOfItem(atPath: path)[.type]) as? FileAttributeType
            if isDirectory.boolValue || (type != nil && type != .typeSocket) {
                section.problem(key, "\(path) exists and is not a socket")
            }
        }
    }
}

extension SDSConfig {
    /// `[sds]`.
    static func read(_ section: SectionReader) -> SDSConfig {
        let sds = SDSConfig(
            isEnabled: section.bool("enabled", default: true),
            defaultSVIDName: section.string("default_svid_name", default: "default"),
            defaultBundleName: section.string("default_bundle_name", default: "ROOTCA"),
            defaultAllBundlesName: section.string("default_all_bundles_name", default: "ALL"),
            disableSPIFFECertValidation: section.bool("disable_spiffe_cert_validation", default: false)
        )
        let names = [sds.defaultSVIDName, sds.defaultBundleName, sds.defaultAllBundlesName].filter { !$0.isEmpty }
        if Set(names).count != names.count {
            section.problems.add(
                "sds",
                "default_svid_name, default_bundle_name and default_all_bundles_name must differ"
            )
        }
        if names.contains(where: { $0.hasPrefix("spiffe://") }) {
            section.problems.add("sds", "special resource names cannot be spiffe:// IDs")
        }
        return sds
    }
}
