import SPIFFE

/// The credential lines of `/proc/<pid>/status`: `Uid:` and `Gid:` (real, effective, saved, filesystem) and
/// `Groups:`.
struct ProcStatus: Hashable, Sendable {
    var realUID: UInt32
    var effectiveUID: UInt32
    var realGID: UInt32
    var effectiveGID: UInt32
    var supplementaryGIDs: [UInt32]

    init(pid: Int32, procRoot: String) throws(AttestationError) {
        let path = "\(procRoot)/\(pid)/status"
        guard let bytes = ProcFile.read(path) else {
            throw AttestationError(.processGone, "process \(pid) is gone (\(path) unreadable)")
        }
        try self.init(parsing: bytes, path: path)
    }

    init(parsing text: String, path: String) throws(AttestationError) {
        try self.init(parsing: Array(text.utf8), path: path)
    }

    init(parsing bytes: [UInt8], path: String) throws(AttestationError) {
        var uids: [UInt32]? = nil
        var gids: [UInt32]? = nil
        var groups: [UInt32] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let key = line[line.startIndex..<colon]
            let isUID = key.elementsEqual("Uid".utf8), isGID = key.elementsEqual("Gid".utf8)
            let isGroups = key.elementsEqual("Groups".utf8)
            guard isUID || isGID || isGroups else { continue }
            let name = isUID ? "Uid" : isGID ? "Gid" : "Groups"
            guard let values = ProcFile.numbers(line[(colon + 1)...]), values.allSatisfy({ $0 <= UInt64(UInt32.max) })
            else { throw AttestationError(.procUnreadable, "\(path): malformed \(name) line") }
            let ids = values.map { UInt32($0) }
            if isGroups {
                groups = ids
            } else {
                guard ids.count == 4 else { throw AttestationError(.procUnreadable, "\(path): malformed \(name) line") }
                if isUID { uids = ids } else { gids = ids }
            }
        }
        guard let uids, let gids else { throw AttestationError(.procUnreadable, "\(path): no Uid or Gid line") }
        self.realUID = uids[0]
        self.effectiveUID = uids[1]
        self.realGID = gids[0]
        self.effectiveGID = gids[1]
        self.supplementaryGIDs = groups
    }
}
