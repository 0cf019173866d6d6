import Foundation
public import SPIFFE
import SPIFFECrypto

#if canImport(Glibc)
    import Glibc
#endif

/// The `unix` attestor: effective uid and gid, supplementary groups, their names, and optionally the executable's
/// path and SHA-256, all from `/proc/<pid>`, which the workload cannot forge.
public struct UnixAttestor: WorkloadAttestor {
    public struct Config: Sendable {
        /// Adds `unix:path` and `unix:sha256` of the executable.
        public var discoverWorkloadPath: Bool
        /// Largest executable hashed for `unix:sha256`, in bytes; 0 means no limit.
        public var workloadSizeLimit: Int64
        /// Where `/proc` is; tests point it at a fake tree.
        public var procRoot: String

        public init(discoverWorkloadPath: Bool = false, workloadSizeLimit: Int64 = 0, procRoot: String = "/proc") {
            self.discoverWorkloadPath = discoverWorkloadPath
            self.workloadSizeLimit = workloadSizeLimit
            self.procRoot = procRoot
        }
    }

    public let config: Config
    public var name: String { "unix" }

    public init(config: Config = Config()) {
        self.config = config
    }

    public func attest(pid: Int32) async throws -> [Selector] {
        let status = try ProcStatus(pid: pid, procRoot: config.procRoot)
        var selectors: [(String, String)] = [
            ("uid", String(status.effectiveUID)), ("gid", String(status.effectiveGID)),
        ]
        if let user = Self.userName(uid: status.effectiveUID) { selectors.append(("user", user)) }
        if let group = Self.groupName(gid: status.effectiveGID) { selectors.append(("group", group)) }
        for gid in status.supplementaryGIDs {
            selectors.append(("supplementary_gid", String(gid)))
            if let group = Self.groupName(gid: gid) { selectors.append(("supplementary_group", group)) }
        }
        if config.discoverWorkloadPath {
            let (path, digest) = try executable(pid: pid)
            selectors.append(("path", path))
            selectors.append(("sha256", digest))
        }
        return try selectors.map { try Selector(type: name, value: $0.1.isEmpty ? "-" : $0.1).with(kind: $0.0) }
    }

    /// The executable's path and the SHA-256 of its contents, read through `/proc/<pid>/exe` so the hash is of
    /// the binary the process runs even if the file at the path was replaced since.
    private func executable(pid: Int32) throws(AttestationError) -> (String, String) {
        let link = "\(config.procRoot)/\(pid)/exe"
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else {
            throw AttestationError(.procUnreadable, "cannot read the executable path of process \(pid)")
        }
        guard let handle = FileHandle(forReadingAtPath: link) else {
            throw AttestationError(.procUnreadable, "cannot open the executable of process \(pid)")
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int64.init) ?? 0
        if config.workloadSizeLimit > 0 && size > config.workloadSizeLimit {
            throw AttestationError(
                .workloadTooLarge,
                "executable \(path) is \(size) bytes, over workload_size_limit \(config.workloadSizeLimit)"
            )
        }
        try? handle.seek(toOffset: 0)
        guard let contents = try? handle.readToEnd() else {
            throw AttestationError(.procUnreadable, "cannot read the executable of process \(pid)")
        }
        return (path, Digest.sha256(contents).map { String(format: "%02x", $0) }.joined())
    }

    /// User and group names, each looked up at most once per ``AccountNames/lifetime`` (NSS reads /etc/passwd
    /// or asks a directory service on every call; a call per RPC was a large share of a cached FetchJWTSVID).
    static let names = AccountNames()

    static func userName(uid: UInt32) -> String? {
        names.user(uid) { lookUpUser(uid: $0) }
    }

    static func groupName(gid: UInt32) -> String? {
        names.group(gid) { lookUpGroup(gid: $0) }
    }

    static func lookUpUser(uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return nil }
        return String(cString: name)
    }

    static func lookUpGroup(gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name
        else { return nil }
        return String(cString: name)
    }
}

extension Selector {
    /// `unix` + (`uid`, `1000`) → `unix:uid:1000`.
    fileprivate func with(kind: String) throws -> Selector { try Selector(type: type, value: "\(kind):\(value)") }
}
