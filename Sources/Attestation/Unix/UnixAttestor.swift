public import SPIFFE
import SPIFFECrypto
public import Timing

#if canImport(Glibc)
    import Glibc
#endif

/// The `unix` attestor: uid and gid as the kernel reported them at connect (`SO_PEERCRED`), supplementary groups,
/// their names, and optionally the executable's path and SHA-256.
///
/// The uid and gid are the connection's, not whatever `/proc/<pid>/status` says at call time: the caller's
/// ``ProcessPin`` refuses every call once the process's real or effective ids differ from them. Supplementary
/// groups come from `/proc/<pid>/status`, read between two pin checks; changing them needs `CAP_SETGID`.
public struct UnixAttestor: WorkloadAttestor {
    public struct Config: Sendable {
        /// Adds `unix:path` and `unix:sha256` of the executable.
        public var discoverWorkloadPath: Bool
        /// Size and time bounds on hashing the executable.
        public var hashLimits: ExecutableHasher.Limits
        /// Where `/proc` is; tests point it at a fake tree.
        public var procRoot: String

        public init(
            discoverWorkloadPath: Bool = false,
            hashLimits: ExecutableHasher.Limits = .defaults,
            procRoot: String = "/proc"
        ) {
            self.discoverWorkloadPath = discoverWorkloadPath
            self.hashLimits = hashLimits
            self.procRoot = procRoot
        }
    }

    public let config: Config
    /// Shared by every attestation with this configuration, so its digest cache outlives one call.
    public let hasher: ExecutableHasher
    /// User and group names, each looked up at most once per ``AccountNames/lifetime`` (NSS reads /etc/passwd
    /// or asks a directory service on every call; a call per RPC was a large share of a cached FetchJWTSVID).
    let names: AccountNames
    public var name: String { "unix" }

    public init(config: Config = Config(), clock: any AgentClock = SystemClock()) {
        self.config = config
        self.hasher = ExecutableHasher(limits: config.hashLimits)
        self.names = AccountNames(clock: clock)
    }

    public func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        let status = try ProcStatus(pid: process.pid, procRoot: config.procRoot)
        var selectors: [(String, String)] = [("uid", String(process.uid)), ("gid", String(process.gid))]
        if let user = names.user(process.uid, lookUp: Self.lookUpUser) { selectors.append(("user", user)) }
        if let group = names.group(process.gid, lookUp: Self.lookUpGroup) { selectors.append(("group", group)) }
        for gid in status.supplementaryGIDs {
            selectors.append(("supplementary_gid", String(gid)))
            if let group = names.group(gid, lookUp: Self.lookUpGroup) {
                selectors.append(("supplementary_group", group))
            }
        }
        if config.discoverWorkloadPath {
            let (path, digest) = try await hasher.executable(of: process.pid, procRoot: config.procRoot)
            selectors.append(("path", path))
            selectors.append(("sha256", digest))
        }
        return try selectors.map { try Selector(type: name, value: $0.1.isEmpty ? "-" : $0.1).with(kind: $0.0) }
    }

    /// The selectors a process of `uid` and `gid` would get from the credentials alone (no supplementary groups,
    /// path or hash): what `lanyard explain --uid` answers for a caller that does not exist.
    public func selectors(uid: UInt32, gid: UInt32) throws -> [Selector] {
        var selectors: [(String, String)] = [("uid", String(uid)), ("gid", String(gid))]
        if let user = names.user(uid, lookUp: Self.lookUpUser) { selectors.append(("user", user)) }
        if let group = names.group(gid, lookUp: Self.lookUpGroup) { selectors.append(("group", group)) }
        return try selectors.map { try Selector(type: name, value: $0.1.isEmpty ? "-" : $0.1).with(kind: $0.0) }
    }

    /// The process `pid` as a caller with its effective uid and gid, read from `/proc` now.
    public static func process(pid: Int32, procRoot: String = "/proc") throws(AttestationError) -> WorkloadProcess {
        let status = try ProcStatus(pid: pid, procRoot: procRoot)
        return WorkloadProcess(pid: pid, uid: status.effectiveUID, gid: status.effectiveGID)
    }

    static func lookUpUser(_ uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return nil }
        return String(cString: name)
    }

    static func lookUpGroup(_ gid: UInt32) -> String? {
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
