/// What systemd says of one process's unit, and the selectors that follow from it.
///
/// Only systemd's manager answers ``id``, ``fragmentPath`` and ``slice``: placing a process in a system unit's cgroup
/// needs root. A unit of a user's own manager (`user@<uid>.service`) is different: below it the user arranges their
/// cgroups at will, so its name is the user's claim and is reported with the uid, as `user_unit:<uid>:<unit>`.
public struct SystemdUnit: Sendable, Equatable {
    /// The unit's name, `nginx.service` or `worker@3.service`.
    public var id: String
    /// The unit file it was loaded from; empty for transient units (scopes, `systemd-run`).
    public var fragmentPath: String
    /// The slice it runs in, `system.slice`; empty for units without one.
    public var slice: String

    public init(id: String, fragmentPath: String = "", slice: String = "") {
        self.id = id
        self.fragmentPath = fragmentPath
        self.slice = slice
    }

    /// `worker@3.service` → (`worker@.service`, `3`); nil for a unit that is not an instance of a template.
    public var template: (template: String, instance: String)? {
        guard let at = id.firstIndex(of: "@"), let dot = id.lastIndex(of: "."), at < dot else { return nil }
        let instance = id[id.index(after: at)..<dot]
        guard !instance.isEmpty else { return nil }
        return (String(id[...at]) + String(id[dot...]), String(instance))
    }

    /// The uid of the user manager this unit is (`user@1000.service`), or nil for every other unit.
    public var userManagerUID: UInt32? {
        guard id.hasPrefix("user@"), id.hasSuffix(".service") else { return nil }
        let digits = id.dropFirst(5).dropLast(8)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        return UInt32(digits)
    }

    /// The unit a user's manager runs a process in, read from its cgroup paths below `user@<uid>.service`: the first
    /// segment after any slices that names a unit (`app.slice/editor.service` → `editor.service`). Nil when the
    /// process sits in the manager's own cgroup or no path passes through it.
    public static func userUnit(uid: UInt32, cgroupPaths: [String]) -> String? {
        let manager = "user@\(uid).service"
        for path in cgroupPaths {
            let segments = path.split(separator: "/")
            guard let start = segments.firstIndex(where: { $0 == manager }) else { continue }
            for segment in segments[(start + 1)...] where !segment.hasSuffix(".slice") {
                return isUnitName(segment) ? String(segment) : nil
            }
        }
        return nil
    }

    private static let unitSuffixes = [".service", ".scope", ".socket", ".mount", ".swap"]

    /// A plausible unit name: a known type suffix after a non-empty stem of printable characters.
    static func isUnitName(_ name: Substring) -> Bool {
        guard let suffix = unitSuffixes.first(where: { name.hasSuffix($0) }), name.count > suffix.count,
            name.utf8.count <= 255
        else { return false }
        return name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }
}
