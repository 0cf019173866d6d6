import Foundation

/// Finds the pod UID and container ID of a process from `/proc/<pid>/cgroup`, which the kernel writes and the
/// workload cannot forge.
///
/// Every cgroup path is walked from its last segment backwards: the first 64-hex word is the container ID, and the
/// first `pod<uid>` word before it is the pod (systemd spells the UID with underscores). This one rule covers
/// cgroup v1 and v2, the cgroupfs and systemd drivers, containerd, CRI-O, docker, kind and cgroup namespaces.
/// CRI-O's `crio-conmon-<id>` monitor scope names a container but is not one, so it locates nothing.
/// `/proc/<pid>/mountinfo` is consulted only when every cgroup path is its namespace's root (`/`), so a process
/// that sits in any cgroup of its own cannot claim another container by bind-mounting that container's cgroup.
public enum ContainerLocator {
    /// Where a containerised process runs.
    public struct Location: Hashable, Sendable, CustomStringConvertible {
        /// The pod UID in canonical (dashed) form, when the path names it.
        public let podUID: String?
        /// The runtime's 64-hex container ID.
        public let containerID: String

        public init(podUID: String?, containerID: String) {
            self.podUID = podUID
            self.containerID = containerID
        }

        public var description: String { "pod \(podUID ?? "unknown") container \(containerID)" }
    }

    /// The location of process `pid`, or nil when it is not in a container (which is not an error).
    public static func locate(pid: Int32, procRoot: String = "/proc") throws(AttestationError) -> Location? {
        let cgroupPath = "\(procRoot)/\(pid)/cgroup"
        guard let cgroup = try? String(contentsOfFile: cgroupPath, encoding: .utf8) else {
            throw AttestationError(.procUnreadable, "cannot read \(cgroupPath)")
        }
        let paths = try cgroupPaths(cgroup)
        if let location = try location(in: paths, source: "cgroup file") { return location }
        guard paths.allSatisfy({ $0 == "/" }) else { return nil }
        let mountinfoPath = "\(procRoot)/\(pid)/mountinfo"
        guard let mountinfo = try? String(contentsOfFile: mountinfoPath, encoding: .utf8) else { return nil }
        return try location(in: cgroupMountRoots(mountinfo), source: "mountinfo")
    }

    /// The paths of a `/proc/<pid>/cgroup` file: `hierarchy-ID:controller-list:path` per line.
    public static func cgroupPaths(_ text: String) throws(AttestationError) -> [String] {
        var paths: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else {
                throw AttestationError(
                    .procUnreadable,
                    "cgroup line \(number + 1) is not hierarchy:controllers:/path: \(line.prefix(200))"
                )
            }
            paths.append(String(fields[2]))
        }
        return paths
    }

    /// The roots of the `cgroup` and `cgroup2` mounts in a `/proc/<pid>/mountinfo` file, except `/`.
    public static func cgroupMountRoots(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard let separator = fields.firstIndex(of: "-"), separator >= 5, separator + 1 < fields.count,
                ["cgroup", "cgroup2"].contains(fields[separator + 1])
            else { return nil }
            let root = String(fields[3])
            return root == "/" ? nil : root
        }
    }

    /// Combines what each path says. A path naming a pod outranks one that does not (kind nests a node's cgroups
    /// inside a container's); two different pods or containers are an error, never a guess.
    public static func location(
        in paths: [String],
        source: String = "cgroup file"
    ) throws(AttestationError)
        -> Location?
    {
        let found = paths.compactMap(location(inPath:))
        let withPod = found.filter { $0.podUID != nil }
        let candidates = withPod.isEmpty ? found : withPod
        guard let first = candidates.first else { return nil }
        if candidates.contains(where: { $0.containerID != first.containerID }) {
            throw AttestationError(.containerConflict, "multiple container IDs found in the \(source)")
        }
        if candidates.contains(where: { $0.podUID != first.podUID }) {
            throw AttestationError(.containerConflict, "multiple pod UIDs found in the \(source)")
        }
        return first
    }

    /// The location one cgroup path names, if any.
    public static func location(inPath path: String) -> Location? {
        let segments = path.utf8.split(separator: UInt8(ascii: "/"))
        for index in segments.indices.reversed() {
            let segment = Array(segments[index])
            guard let range = firstWord(in: segment, matching: isContainerID) else { continue }
            // CRI-O's monitor runs beside the container in `crio-conmon-<id>.scope`; it is not the workload.
            if segment[..<range.lowerBound].reversed().starts(with: "-nomnoc".utf8) { return nil }
            var podUID = firstWord(in: Array(segment[..<range.lowerBound]), matching: podUIDLength).map {
                uid(from: Array(segment[$0]))
            }
            var earlier = index
            while podUID == nil && earlier > segments.startIndex {
                earlier -= 1
                let previous = Array(segments[earlier])
                podUID = firstWord(in: previous, matching: podUIDLength).map { uid(from: Array(previous[$0])) }
            }
            return Location(podUID: podUID, containerID: String(decoding: segment[range], as: UTF8.self))
        }
        return nil
    }

    // MARK: - Word scanning (what `\b…\b` means in a regular expression, without one)

    private static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default: false
        }
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }

    /// The first range starting at a word boundary where `length(bytes, start)` matches a word ending at a boundary.
    private static func firstWord(in bytes: [UInt8], matching length: ([UInt8], Int) -> Int?) -> Range<Int>? {
        var start = 0
        while start < bytes.count {
            if start == 0 || !isWordByte(bytes[start - 1]), let count = length(bytes, start) {
                let end = start + count
                if end == bytes.count || !isWordByte(bytes[end]) { return start..<end }
            }
            start += 1
        }
        return nil
    }

    /// 64 hex digits.
    private static func isContainerID(_ bytes: [UInt8], _ start: Int) -> Int? {
        guard bytes.count - start >= 64, bytes[start..<start + 64].allSatisfy(isHex) else { return nil }
        return 64
    }

    private static let uidGroups = [8, 4, 4, 4, 12]

    /// `pod` then a UID of lowercase hex groups 8-4-4-4-12 separated by `-` or `_`.
    private static func podUIDLength(_ bytes: [UInt8], _ start: Int) -> Int? {
        let prefix = Array("pod".utf8)
        guard bytes.count - start >= prefix.count + 36, Array(bytes[start..<start + 3]) == prefix else { return nil }
        var position = start + 3
        for (number, group) in uidGroups.enumerated() {
            if number > 0 {
                guard bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "_") else { return nil }
                position += 1
            }
            guard bytes[position..<position + group].allSatisfy(isLowerHex) else { return nil }
            position += group
        }
        return position - start
    }

    /// The dashed UID from a matched `pod<uid>` word.
    private static func uid(from word: [UInt8]) -> String {
        String(decoding: word.dropFirst(3).map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }
}
