public import SPIFFE
import Foundation

/// Finds the pod UID and container ID of a process from `/proc/<pid>/cgroup`, and only from cgroups that the kubelet
/// and its container runtime created.
///
/// The kernel writes `/proc/<pid>/cgroup`, but not its names: a user can create cgroups in their own delegated
/// subtree (`user@<uid>.service`), and a container with a writable cgroup namespace can create them below its own
/// container cgroup, with any name, including another pod's UID and another container's ID (which every process
/// can read from `/proc/*/cgroup`). So a path is read from its root, and yields a location only when it follows the
/// kubelet's layout from the top of the hierarchy:
///
///     cgroupfs driver:  /kubepods[/besteffort|/burstable]/pod<uid>/<container>
///     systemd driver:   /kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope
///
/// where `<container>` is a 64-hex ID, bare or as `crio-<id>` / `cri-containerd-<id>` / `docker-<id>`. Creating any
/// of these levels needs root, except below the container's own cgroup; so the container is the first segment
/// directly under the pod, and whatever a container nests beneath itself is attributed to that outer container.
/// A path with anything else (user slices, system services, a pod level without a container, a systemd slice that
/// does not extend its parent's name) is not in a pod: no `k8s` selectors.
///
/// Two more places the hierarchy may start, both decided by the agent's own placement, never by the caller:
/// - Cgroup namespaces: a path outside the agent's namespace starts with `..` segments and is relative to an
///   ancestor of the agent's own cgroup; it may then begin at the kubepods, QoS or pod level.
/// - `hierarchyPrefixes`: when the agent itself runs in a pod whose hierarchy sits below a prefix (kind nodes on
///   cgroup v1 show `/docker/<node>/kubepods/...`), that prefix, read from the agent's own `/proc/self/cgroup`.
/// Kind's systemd layout below `kubelet.slice` (its `--cgroup-root`) and cgroupfs below `/kubelet` are accepted.
/// CRI-O's `crio-conmon-<id>` monitor scope names a container but is not one, so it locates nothing.
public enum ContainerLocator {
    /// Where a containerised process runs.
    public struct Location: Hashable, Sendable, CustomStringConvertible {
        /// The pod UID in canonical (dashed) form.
        public let podUID: String
        /// The runtime's 64-hex container ID.
        public let containerID: String

        public init(podUID: String, containerID: String) {
            self.podUID = podUID
            self.containerID = containerID
        }

        public var description: String { "pod \(podUID) container \(containerID)" }
    }

    /// The location of process `pid`, or nil when it is not in a pod's container (which is not an error).
    ///
    /// `/proc/<pid>/mountinfo` is consulted only when every cgroup path is the namespace root (`/`): a process that
    /// sits in any cgroup of its own cannot claim another container by bind-mounting that container's cgroup.
    public static func locate(
        pid: Int32,
        procRoot: String = "/proc",
        hierarchyPrefixes: [String] = []
    ) throws(AttestationError) -> Location? {
        let paths = try cgroupPaths(pid: pid, procRoot: procRoot)
        if let location = try location(in: paths, hierarchyPrefixes: hierarchyPrefixes, source: "cgroup file") {
            return location
        }
        guard paths.allSatisfy({ $0 == "/" }) else { return nil }
        guard let mountinfo = ProcFile.read("\(procRoot)/\(pid)/mountinfo", limit: 1 << 20) else { return nil }
        return try location(
            in: cgroupMountRoots(String(decoding: mountinfo, as: UTF8.self)),
            hierarchyPrefixes: hierarchyPrefixes,
            source: "mountinfo"
        )
    }

    /// The prefixes above the kubelet's hierarchy in the agent's own cgroup paths: non-empty only when the agent
    /// runs in a pod whose hierarchy does not start at the root (kind on cgroup v1).
    public static func ownHierarchyPrefixes(procRoot: String = "/proc") -> [String] {
        guard let cgroup = ProcFile.read("\(procRoot)/self/cgroup"),
            let paths = try? cgroupPaths(String(decoding: cgroup, as: UTF8.self))
        else { return [] }
        var prefixes: Set<String> = []
        for path in paths where !path.hasPrefix("/..") {
            let segments = path.split(separator: "/")
            for start in segments.indices.dropFirst() where kubeletPath(segments[start...], relative: false) != nil {
                prefixes.insert("/" + segments[..<start].joined(separator: "/"))
                break
            }
        }
        return prefixes.sorted()
    }

    /// The cgroup paths of process `pid`, one per hierarchy, from `/proc/<pid>/cgroup` (which the kernel writes);
    /// every attestor that reads cgroups starts here.
    public static func cgroupPaths(pid: Int32, procRoot: String = "/proc") throws(AttestationError) -> [String] {
        let cgroupPath = "\(procRoot)/\(pid)/cgroup"
        guard let cgroup = ProcFile.read(cgroupPath) else {
            throw AttestationError(.procUnreadable, "cannot read \(cgroupPath)")
        }
        return try cgroupPaths(String(decoding: cgroup, as: UTF8.self))
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

    /// Combines what each path says: the paths that lie in a pod must agree on it; two different pods or
    /// containers are an error, never a guess.
    public static func location(
        in paths: [String],
        hierarchyPrefixes: [String] = [],
        source: String = "cgroup file"
    ) throws(AttestationError) -> Location? {
        let found = paths.compactMap { location(inPath: $0, hierarchyPrefixes: hierarchyPrefixes) }
        guard let first = found.first else { return nil }
        if found.contains(where: { $0.containerID != first.containerID }) {
            throw AttestationError(.containerConflict, "multiple container IDs found in the \(source)")
        }
        if found.contains(where: { $0.podUID != first.podUID }) {
            throw AttestationError(.containerConflict, "multiple pod UIDs found in the \(source)")
        }
        return first
    }

    /// The location one cgroup path names, if it lies in the kubelet's hierarchy.
    public static func location(inPath path: String, hierarchyPrefixes: [String] = []) -> Location? {
        var segments = path.split(separator: "/")[...]
        var relative = false
        while segments.first == ".." {
            segments.removeFirst()
            relative = true
        }
        guard !segments.contains(where: { $0 == ".." || $0 == "." }) else { return nil }
        if let location = kubeletPath(segments, relative: relative) { return location }
        guard !relative else { return nil }
        for prefix in hierarchyPrefixes {
            let prefixSegments = prefix.split(separator: "/")
            guard !prefixSegments.isEmpty, segments.starts(with: prefixSegments) else { continue }
            if let location = kubeletPath(segments.dropFirst(prefixSegments.count), relative: false) {
                return location
            }
        }
        return nil
    }

    // MARK: - The kubelet's layout

    /// Reads `segments` as the kubelet's hierarchy: from its root, or (`relative`, below a cgroup namespace's `..`)
    /// from the kubepods, QoS or pod level.
    private static func kubeletPath(_ segments: ArraySlice<Substring>, relative: Bool) -> Location? {
        guard let first = segments.first else { return nil }
        return first.hasSuffix(".slice")
            ? systemdPath(segments, relative: relative) : cgroupfsPath(segments, relative: relative)
    }

    private static func isQoS(_ name: Substring?) -> Bool { name == "besteffort" || name == "burstable" }

    /// `/kubepods[/<qos>]/pod<uid>/<container>`, optionally below kind's `/kubelet`.
    private static func cgroupfsPath(_ segments: ArraySlice<Substring>, relative: Bool) -> Location? {
        var rest = segments
        if rest.first == "kubelet" && rest.dropFirst().first == "kubepods" {
            rest.removeFirst(2)
        } else if rest.first == "kubepods" {
            rest.removeFirst()
        } else if !relative {
            return nil
        }
        if isQoS(rest.first) { rest.removeFirst() }
        guard let pod = rest.first, pod.hasPrefix("pod"),
            let uid = podUID(pod.dropFirst(3), separator: UInt8(ascii: "-"))
        else { return nil }
        rest.removeFirst()
        guard let container = rest.first, let id = containerID(container, scope: false) else { return nil }
        return Location(podUID: uid, containerID: id)
    }

    /// `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope`, optionally
    /// below one top-level slice (kind's `kubelet.slice/kubelet-kubepods.slice`). Each slice's name extends its
    /// parent's, as systemd requires of the slices it creates.
    private static func systemdPath(_ segments: ArraySlice<Substring>, relative: Bool) -> Location? {
        var rest = segments
        guard let top = rest.first.flatMap(sliceStem), let parts = dashComponents(top) else { return nil }
        var kubepods: Substring? = nil
        var qos: Substring? = nil
        if parts.count == 1 {
            rest.removeFirst()
            if parts[0] == "kubepods" {
                kubepods = top
            } else {
                guard let next = rest.first.flatMap(sliceStem), next == top + "-kubepods" else { return nil }
                kubepods = next
                rest.removeFirst()
            }
        } else if relative {
            // Below a `..` the path may begin at the kubepods, QoS or pod slice; the name says which.
            if parts.last == "kubepods" {
                kubepods = top
                rest.removeFirst()
            } else if isQoS(parts.last), parts.dropLast().last == "kubepods" {
                qos = top
                rest.removeFirst()
            }
        } else {
            return nil
        }
        if let kubepods, let next = rest.first.flatMap(sliceStem),
            next == kubepods + "-besteffort" || next == kubepods + "-burstable"
        {
            qos = next
            rest.removeFirst()
        }
        guard let podStem = rest.first.flatMap(sliceStem), let podParts = dashComponents(podStem),
            let podName = podParts.last, podName.hasPrefix("pod")
        else { return nil }
        if let parent = qos ?? kubepods {
            guard podStem == parent + "-" + podName else { return nil }
        } else {
            // A relative path that starts at the pod slice: `…kubepods-pod<uid>` or `…kubepods-<qos>-pod<uid>`.
            let above = podParts.dropLast()
            guard above.last == "kubepods" || (isQoS(above.last) && above.dropLast().last == "kubepods") else {
                return nil
            }
        }
        guard let uid = podUID(podName.dropFirst(3), separator: UInt8(ascii: "_")) else { return nil }
        rest.removeFirst()
        guard let container = rest.first, let id = containerID(container, scope: true) else { return nil }
        return Location(podUID: uid, containerID: id)
    }

    /// The dash-separated parts of a slice name, or nil when one is empty.
    private static func dashComponents(_ stem: Substring) -> [Substring]? {
        let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
        return parts.contains(where: \.isEmpty) ? nil : parts
    }

    /// `name.slice` → `name`.
    private static func sliceStem(_ segment: Substring) -> Substring? {
        guard segment.hasSuffix(".slice") else { return nil }
        let stem = segment.dropLast(6)
        return stem.isEmpty ? nil : stem
    }

    private static let runtimes = ["cri-containerd-", "crio-", "docker-"]

    /// The container ID a container segment names: `<id>` or `<runtime>-<id>` (cgroupfs), `<runtime>-<id>.scope`
    /// (systemd). CRI-O's `crio-conmon-<id>` is its monitor, not the container.
    private static func containerID(_ segment: Substring, scope: Bool) -> String? {
        var name = segment
        if scope {
            guard name.hasSuffix(".scope") else { return nil }
            name = name.dropLast(6)
        }
        if let runtime = runtimes.first(where: { name.hasPrefix($0) }) {
            name = name.dropFirst(runtime.count)
        } else if scope {
            return nil
        }
        guard name.utf8.count == 64, name.utf8.allSatisfy(isLowerHex) else { return nil }
        return String(name)
    }

    private static let uidGroups = [8, 4, 4, 4, 12]

    /// A pod UID spelled as lowercase hex groups 8-4-4-4-12 separated by `separator` (systemd uses `_`), in its
    /// canonical dashed form.
    private static func podUID(_ text: Substring, separator: UInt8) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        var position = 0
        for (number, group) in uidGroups.enumerated() {
            if number > 0 {
                guard bytes[position] == separator else { return nil }
                position += 1
            }
            guard bytes[position..<position + group].allSatisfy(isLowerHex) else { return nil }
            position += group
        }
        return String(decoding: bytes.map { $0 == separator ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }
}
