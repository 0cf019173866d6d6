public import SPIFFE

/// Finds the Docker or Podman container of a process from `/proc/<pid>/cgroup`, and only from cgroups laid out the
/// way the runtimes themselves create them, read from the root of the hierarchy:
///
///     Docker, cgroupfs driver:    /docker/<id>
///     Docker, systemd driver:     /system.slice/docker-<id>.scope
///     Podman, systemd:            /machine.slice[/machine-libpod_pod_<pod>.slice]/libpod-<id>.scope
///     Podman, cgroupfs:           /libpod_parent/libpod-<id>
///     rootless Podman:            /user.slice/user-<uid>.slice/user@<uid>.service[/<name>.slice…]/libpod-<id>.scope
///
/// `<id>` is 64 lowercase hex digits. Everything above the container level needs root to create, except below
/// `user@<uid>.service`, which belongs to that user: a container found there is rootless, and tagged with the uid so
/// it is only ever looked up through that user's own runtime. Whatever a container nests below its own cgroup is
/// attributed to the container. Any other path (a container-like name elsewhere, `libpod-conmon-<id>.scope`,
/// Kubernetes pods, paths outside the agent's cgroup namespace) locates nothing.
public enum RuntimeContainerLocator {
    public enum Runtime: Hashable, Sendable, CustomStringConvertible {
        case docker
        case podman
        /// Podman run by the user `uid`, through their own socket.
        case rootlessPodman(uid: UInt32)

        public var description: String {
            switch self {
            case .docker: "docker"
            case .podman: "podman"
            case .rootlessPodman(let uid): "rootless podman of uid \(uid)"
            }
        }
    }

    public struct Location: Hashable, Sendable, CustomStringConvertible {
        public let runtime: Runtime
        public let containerID: String

        public init(runtime: Runtime, containerID: String) {
            self.runtime = runtime
            self.containerID = containerID
        }

        public var description: String { "\(runtime) container \(containerID)" }
    }

    /// The container of process `pid`, or nil when it is in none (which is not an error).
    public static func locate(pid: Int32, procRoot: String = "/proc") throws(AttestationError) -> Location? {
        try location(in: ContainerLocator.cgroupPaths(pid: pid, procRoot: procRoot))
    }

    /// What the paths say together: those in a container must name the same one; two are an error, never a guess.
    public static func location(in paths: [String]) throws(AttestationError) -> Location? {
        let found = paths.compactMap(location(inPath:))
        guard let first = found.first else { return nil }
        if found.contains(where: { $0 != first }) {
            throw AttestationError(.containerConflict, "the cgroup file names more than one container")
        }
        return first
    }

    /// The container one cgroup path names, if it follows a runtime's layout.
    public static func location(inPath path: String) -> Location? {
        let segments = path.split(separator: "/")
        guard !segments.contains(where: { $0 == ".." || $0 == "." }), let first = segments.first else { return nil }
        var rest = segments.dropFirst()
        switch first {
        case "docker":
            return rest.first.flatMap { containerID($0, prefix: "", suffix: "") }
                .map { Location(runtime: .docker, containerID: $0) }
        case "system.slice":
            return rest.first.flatMap { containerID($0, prefix: "docker-", suffix: ".scope") }
                .map { Location(runtime: .docker, containerID: $0) }
        case "machine.slice":
            if let pod = rest.first, pod.hasPrefix("machine-libpod_pod_"), pod.hasSuffix(".slice"),
                isHexID(pod.dropFirst(19).dropLast(6))
            {
                rest = rest.dropFirst()
            }
            return rest.first.flatMap { containerID($0, prefix: "libpod-", suffix: ".scope") }
                .map { Location(runtime: .podman, containerID: $0) }
        case "libpod_parent":
            return rest.first.flatMap { containerID($0, prefix: "libpod-", suffix: "") }
                .map { Location(runtime: .podman, containerID: $0) }
        case "user.slice":
            return rootless(rest)
        default:
            return nil
        }
    }

    /// `user-<uid>.slice/user@<uid>.service[/<name>.slice…]/libpod-<id>.scope`, the uids equal.
    private static func rootless(_ segments: ArraySlice<Substring>) -> Location? {
        var rest = segments
        guard let userSlice = rest.popFirst(), userSlice.hasPrefix("user-"), userSlice.hasSuffix(".slice"),
            let uid = decimal(userSlice.dropFirst(5).dropLast(6)), rest.popFirst() == "user@\(uid).service"
        else { return nil }
        while let next = rest.first, next.hasSuffix(".slice") { rest = rest.dropFirst() }
        return rest.first.flatMap { containerID($0, prefix: "libpod-", suffix: ".scope") }
            .map { Location(runtime: .rootlessPodman(uid: uid), containerID: $0) }
    }

    private static func containerID(_ segment: Substring, prefix: String, suffix: String) -> String? {
        guard segment.hasPrefix(prefix), segment.hasSuffix(suffix) else { return nil }
        let id = segment.dropFirst(prefix.count).dropLast(suffix.count)
        return isHexID(id) ? String(id) : nil
    }

    private static func isHexID(_ text: Substring) -> Bool {
        text.utf8.count == 64
            && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    private static func decimal(_ text: Substring) -> UInt32? {
        guard !text.isEmpty, text.count <= 10, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            text == "0" || !text.hasPrefix("0")
        else { return nil }
        return UInt32(text)
    }
}
