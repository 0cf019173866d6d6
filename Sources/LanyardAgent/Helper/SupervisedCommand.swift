import CLinux
import Foundation
import Logging
import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// The child `cmd` and `cmd_args` start: an argument vector executed directly (no shell), signalled through a pidfd
/// taken at start (so a signal never reaches a process that inherited its PID after it exited), with SIGTERM and
/// SIGINT forwarded. The helper exits with the child's status.
final class SupervisedCommand: Sendable {
    let process: Process
    private let pidfd: Int32

    init(arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        if !arguments[0].hasPrefix("/") {
            // A bare name is looked up on PATH, as a shell would, but without one.
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            let found = path.split(separator: ":").map { "\($0)/\(arguments[0])" }.first {
                FileManager.default.isExecutableFile(atPath: $0)
            }
            guard let found else { throw HelperError("cmd \(arguments[0]) is not on PATH") }
            process.executableURL = URL(fileURLWithPath: found)
        }
        process.arguments = Array(arguments.dropFirst())
        try process.run()
        self.process = process
        // The child cannot have been reaped yet: only `waitForExit` reaps it, later.
        pidfd = lanyard_pidfd_open(process.processIdentifier)
    }

    deinit {
        if pidfd >= 0 { close(pidfd) }
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ number: Int32) throws {
        guard pidfd >= 0, lanyard_pidfd_send_signal(pidfd, number) == 0 else {
            throw HelperError("cannot signal the child \(pid): \(String(cString: strerror(errno)))")
        }
    }

    /// Waits for the child; its exit status, or 128 + the signal that ended it, as a shell reports it.
    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.process.waitUntilExit()
                let status = self.process.terminationStatus
                continuation.resume(
                    returning: self.process.terminationReason == .uncaughtSignal ? 128 + status : status
                )
            }
        }
    }
}

/// A failure of the helper, said plainly.
struct HelperError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
