import CLinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Signals the process a PID file names, and only that process.
///
/// The file is read afresh each time (the server may have restarted). A PID alone is not enough: if the server died
/// and its PID was recycled, the file names a stranger. The process is held through a pidfd while it is checked, so
/// the checked process and the signalled one are the same; and it must have started no later than the PID file was
/// last written — the server writes its PID after it starts, and a process that took a recycled PID started after
/// the file was written.
struct PIDFileSignal: Sendable {
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

    let path: String
    let signal: Int32

    /// Sends the signal; returns the PID signalled.
    @discardableResult
    func send() throws(Refusal) -> Int32 {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 64 else {
            throw Refusal(description: "cannot read the pid file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = Int32(text), pid > 1 else {
            throw Refusal(description: "the pid file \(path) holds \"\(text.prefix(20))\", not a process ID")
        }
        guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        else {
            throw Refusal(description: "cannot stat the pid file \(path)")
        }
        let writtenAt = modified.timeIntervalSince1970
        let pidfd = lanyard_pidfd_open(pid)
        guard pidfd >= 0 else {
            throw Refusal(description: "process \(pid) named by \(path) is not running")
        }
        defer { close(pidfd) }
        guard let startedAt = Self.startTime(of: pid) else {
            throw Refusal(description: "cannot read when process \(pid) started")
        }
        // Still the same process: it was alive (held by the pidfd) through the read above.
        guard lanyard_pidfd_send_signal(pidfd, 0) == 0 else {
            throw Refusal(description: "process \(pid) exited while it was checked")
        }
        // The start time is counted in clock ticks (10 ms): allow that much.
        guard startedAt <= writtenAt + 0.02 else {
            throw Refusal(
                description: "process \(pid) started after \(path) was written: its PID was recycled, the pid file "
                    + "is stale; not signalling it"
            )
        }
        guard lanyard_pidfd_send_signal(pidfd, signal) == 0 else {
            throw Refusal(description: "cannot signal process \(pid): \(String(cString: strerror(errno)))")
        }
        return pid
    }

    /// When `pid` started, in seconds since the epoch: `/proc/<pid>/stat`'s start time (ticks since boot) placed on
    /// the wall clock through the boot-time clock, which counts the same ticks including suspend.
    static func startTime(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return nil }
        // After the command name: field 3 (state) is at index 0, field 22 (starttime) at index 19.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        let sinceBoot = ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        let bootedAt = lanyard_boot_wall_time()
        return bootedAt + sinceBoot
    }
}
