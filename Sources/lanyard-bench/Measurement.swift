import Foundation

/// Latencies of many calls and what they add up to.
struct LatencySample {
    var nanoseconds: [UInt64] = []
    var wall: Duration = .zero

    mutating func record(_ duration: Duration) {
        nanoseconds.append(
            UInt64(duration.components.seconds) * 1_000_000_000
                + UInt64(duration.components.attoseconds / 1_000_000_000)
        )
    }

    /// The `fraction` quantile in microseconds.
    func percentile(_ fraction: Double) -> Double {
        guard !nanoseconds.isEmpty else { return 0 }
        let sorted = nanoseconds.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.down)))
        return Double(sorted[index]) / 1000
    }

    /// Calls per second over the wall time.
    var throughput: Double {
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        return seconds > 0 ? Double(nanoseconds.count) / seconds : 0
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
enum ProcessMemory {
    /// `VmRSS` (or `VmHWM`, the peak) in KiB.
    static func kib(_ field: String = "VmRSS", pid: Int32 = getpid()) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// Private (anonymous) memory in KiB, from `/proc/<pid>/smaps_rollup`: RSS minus the file-backed pages of the
    /// binary and shared libraries, which are shared between processes and reclaimable.
    static func anonymousKiB(pid: Int32) -> Int {
        guard let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return 0 }
        for line in rollup.split(separator: "\n") where line.hasPrefix("Anonymous:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// Resets the peak (`VmHWM`) to the current RSS, so a later peak belongs to what ran since.
    static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// User plus system CPU time a process has used, in seconds, from `/proc/<pid>/stat`.
    static func cpuSeconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return 0 }
        // After the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Open file descriptors of a process.
    static func openDescriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }
}

/// One row of the report: a figure, its floor measured in the same run, and the target it is held to.
struct Figure: Encodable {
    var name: String
    var value: Double
    var unit: String
    var floor: Double?
    /// value / floor (or floor / value for throughputs), as the target is phrased.
    var ratio: Double?
    var target: String
    var met: Bool?
}

/// Prints at once, so a crash or a watcher never loses what was measured.
func say(_ text: String) {
    print(text)
    fflush(nil)
}
