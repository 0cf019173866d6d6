import Foundation

/// The credential lines of `/proc/<pid>/status`: `Uid:` and `Gid:` (real, effective, saved, filesystem) and
/// `Groups:`.
struct ProcStatus: Hashable, Sendable {
    var effectiveUID: UInt32
    var effectiveGID: UInt32
    var supplementaryGIDs: [UInt32]

    init(pid: Int32, procRoot: String) throws(AttestationError) {
        let path = "\(procRoot)/\(pid)/status"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AttestationError(.processGone, "process \(pid) is gone (\(path) unreadable)")
        }
        try self.init(parsing: String(decoding: data, as: UTF8.self), path: path)
    }

    init(parsing text: String, path: String) throws(AttestationError) {
        var uid: UInt32? = nil
        var gid: UInt32? = nil
        var groups: [UInt32] = []
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let values = line[line.index(after: colon)...].split(whereSeparator: { $0 == "\t" || $0 == " " })
            switch key {
            case "Uid", "Gid":
                guard values.count == 4, let effective = UInt32(values[1]) else {
                    throw AttestationError(.procUnreadable, "\(path): malformed \(key) line")
                }
                if key == "Uid" { uid = effective } else { gid = effective }
            case "Groups":
                for value in values {
                    guard let group = UInt32(value) else {
                        throw AttestationError(.procUnreadable, "\(path): malformed Groups line")
                    }
                    groups.append(group)
                }
            default:
                continue
            }
        }
        guard let uid, let gid else { throw AttestationError(.procUnreadable, "\(path): no Uid or Gid line") }
        self.effectiveUID = uid
        self.effectiveGID = gid
        self.supplementaryGIDs = groups
    }
}
