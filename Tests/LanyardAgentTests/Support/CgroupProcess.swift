import Foundation
import LanyardTestSupport
import Testing

/// A real process (`sleep`) parked in a real cgroup created for it, as a runtime or systemd would have placed it;
/// the cgroups created on the way are removed when it stops.
struct CgroupProcess {
    let process: ChildProcess
    /// The cgroup's directory.
    let directory: String
    private let created: [String]

    /// Creates `path` below the hierarchy mounted at `root` and starts a process in it.
    static func start(root: String, path: String) async throws -> CgroupProcess {
        let (directory, created) = make(root: root, path: path)
        let process = try await ChildProcess.start(
            ["/bin/sh", "-c", "echo $$ > \(directory)/cgroup.procs && exec sleep 120"]
        )
        let moved = try await HelperTests.eventually {
            HelperTests.read("/proc/\(process.pid)/cgroup")?.contains(":\(path)\n") == true
                && HelperTests.read("/proc/\(process.pid)/comm") == "sleep\n"
        }
        #expect(moved, "process \(process.pid) did not reach \(path)")
        return CgroupProcess(process: process, directory: directory, created: created)
    }

    /// Creates the cgroups of `path` below `root` that do not exist yet: the full directory, and those created.
    /// Tests in other suites share the upper levels (`system.slice`) and remove those they created when done, so a
    /// level that vanishes under us is created again.
    static func make(root: String, path: String) -> (directory: String, created: [String]) {
        var created: [String] = []
        var directory = root
        for _ in 0..<10 {
            directory = root
            for (depth, segment) in path.split(separator: "/").enumerated() {
                directory += "/\(segment)"
                // Top-level slices (system.slice, user.slice) are shared with other suites running at the same
                // time, and are systemd's own on a real host: made when missing, never removed.
                let shared = depth == 0 && segment.hasSuffix(".slice")
                if mkdir(directory, 0o755) == 0 && !shared { created.append(directory) }
            }
            if FileManager.default.fileExists(atPath: directory + "/cgroup.procs") { break }
        }
        return (directory, created)
    }

    static func remove(_ created: [String]) {
        for directory in created.reversed() { rmdir(directory) }
    }

    func stop() async {
        process.stop()
        _ = await process.waitUntilExit()
        Self.remove(created)
    }
}
