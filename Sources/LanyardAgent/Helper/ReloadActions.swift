import CLinux
import CSystemd
import Foundation
import Logging
import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// What tells the software using the files that they changed: `renew_signal` to the supervised child or to the
/// process in `pid_file_name`, `reload_cmd`, and `reload_unit` through systemd's D-Bus API. Each runs after every
/// published renewal; a failure is logged and reported so the helper retries it, never fatal.
struct ReloadActions: Sendable {
    var child: SupervisedCommand?
    var pidFile: PIDFileSignal?
    let signal: Int32?
    var reloadCommand: [String]?
    let reloadCommandTimeout: Duration
    var reloadUnit: String?
    let logger: Logger

    var isEmpty: Bool { child == nil && pidFile == nil && reloadCommand == nil && reloadUnit == nil }

    /// Runs every action; what failed, described, and the actions that failed (to retry only those).
    func perform() async -> (failures: [String], failed: ReloadActions) {
        var failures: [String] = []
        var failed = ReloadActions(
            child: nil,
            pidFile: nil,
            signal: signal,
            reloadCommand: nil,
            reloadCommandTimeout: reloadCommandTimeout,
            reloadUnit: nil,
            logger: logger
        )
        if let child, let signal {
            do {
                try child.signal(signal)
                logger.info("signalled the child", metadata: ["pid": "\(child.pid)", "signal": "\(signal)"])
            } catch {
                failures.append("\(error)")
                failed.child = child
            }
        }
        if let pidFile {
            do {
                let pid = try pidFile.send()
                logger.info(
                    "signalled the process in the pid file",
                    metadata: ["pid": "\(pid)", "signal": "\(pidFile.signal)"]
                )
            } catch {
                failures.append("\(error)")
                failed.pidFile = pidFile
            }
        }
        if let reloadCommand {
            let status = await Self.run(reloadCommand, timeout: reloadCommandTimeout)
            switch status {
            case .success(0):
                logger.info("reload_cmd succeeded", metadata: ["command": "\(reloadCommand[0])"])
            case .success(let code):
                failures.append("reload_cmd \(reloadCommand[0]) exited with status \(code)")
                failed.reloadCommand = reloadCommand
            case .failure(let error):
                failures.append("\(error)")
                failed.reloadCommand = reloadCommand
            }
        }
        if let reloadUnit {
            var message = [CChar](repeating: 0, count: 512)
            if lanyard_systemd_reload_unit(reloadUnit, &message, message.count) < 0 {
                failures.append("systemd did not reload \(reloadUnit): \(String(cString: message))")
                failed.reloadUnit = reloadUnit
            } else {
                logger.info("asked systemd to reload the unit", metadata: ["unit": "\(reloadUnit)"])
            }
        }
        return (failures, failed)
    }

    /// Runs `arguments` (no shell) and waits for it, killing it after `timeout`.
    static func run(_ arguments: [String], timeout: Duration) async -> Result<Int32, HelperError> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        do {
            try process.run()
        } catch {
            return .failure(HelperError("cannot run reload_cmd \(arguments[0]): \(error)"))
        }
        // Killed through a pidfd taken before it can be reaped, so the timeout never hits a recycled PID.
        let pidfd = lanyard_pidfd_open(process.processIdentifier)
        defer { if pidfd >= 0 { close(pidfd) } }
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            _ = lanyard_pidfd_send_signal(pidfd, SIGKILL)
        }
        let status = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        watchdog.cancel()
        if process.terminationReason == .uncaughtSignal {
            return .failure(
                HelperError("reload_cmd \(arguments[0]) was killed by signal \(status) (timeout \(timeout))")
            )
        }
        return .success(status)
    }
}
