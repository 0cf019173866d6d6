import Foundation

/// `[admin]`: the admin endpoint behind `lanyard status`, `explain`, `entries` and `log-level`.
public struct AdminSettings: Sendable, Equatable {
    /// nil when turned off (`socket_path = ""`).
    public var socketPath: String?
    /// Who may call it, by the uid the kernel reports for the connecting process.
    public var authorizedUIDs: Set<UInt32>

    public static let defaultSocketPath = "/run/lanyard/admin.sock"

    static func read(_ section: SectionReader) -> AdminSettings {
        let path = section.string("socket_path", default: defaultSocketPath)
        var socketPath: String? = path.isEmpty ? nil : path
        if let candidate = socketPath {
            if !candidate.hasPrefix("/") {
                section.problem("socket_path", "must be an absolute path, or \"\" to turn the admin endpoint off")
                socketPath = nil
            } else if candidate.utf8.count > WorkloadAPISettings.maximumSocketPathLength {
                section.problem(
                    "socket_path",
                    "is \(candidate.utf8.count) bytes; a unix socket path holds at most \(WorkloadAPISettings.maximumSocketPathLength)"
                )
                socketPath = nil
            }
        }
        var uids: Set<UInt32> = [0]
        if let listed = section.integers("authorized_uids") {
            if let bad = listed.first(where: { $0 < 0 || $0 > Int64(UInt32.max) }) {
                section.problem("authorized_uids", "\(bad) is not a uid")
            } else {
                uids = Set(listed.map { UInt32($0) })
            }
        }
        return AdminSettings(socketPath: socketPath, authorizedUIDs: uids)
    }
}
