import CSystemd
import Foundation

/// Tells systemd what the agent is doing through `sd_notify`: `READY=1` once it serves, `STATUS=` lines,
/// `WATCHDOG=1` pings, `RELOADING=1` and `STOPPING=1`. Without `NOTIFY_SOCKET` every call is a no-op.
struct SystemdNotifier: Sendable {
    /// Whether systemd (or a test harness) listens.
    var isListening: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    func notify(_ assignments: String...) {
        _ = sd_notify(0, assignments.joined(separator: "\n"))
    }

    func ready(status: String) { notify("READY=1", "STATUS=\(status)") }

    func status(_ status: String) { notify("STATUS=\(status)") }

    /// `RELOADING=1` with the monotonic timestamp newer systemd versions require.
    func reloading() {
        notify("RELOADING=1", "MONOTONIC_USEC=\(lanyard_monotonic_usec())", "STATUS=reloading the configuration")
    }

    func stopping() { notify("STOPPING=1", "STATUS=stopping") }

    func watchdogPing() { notify("WATCHDOG=1") }

    /// The watchdog interval systemd set (`WatchdogSec=`), if any.
    var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(microseconds))
    }

    /// The first socket systemd passed (`LISTEN_FDS`), for socket activation. The variables are cleared so
    /// children never inherit them.
    static func activatedSocket() -> Int? {
        let count = sd_listen_fds(1)
        guard count > 0 else { return nil }
        return Int(lanyard_SD_LISTEN_FDS_START())
    }
}
