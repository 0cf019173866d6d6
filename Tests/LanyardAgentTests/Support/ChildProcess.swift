import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid` on its own pid.
///
/// Foundation's `Process` learns that a child exited when a socket shared with it closes. Children that other tests
/// start at the same moment can inherit that socket, and then `waitUntilExit` spins at 100 % CPU until the
/// inheritor (an agent under `systemd-socket-activate`, say) exits too: the suite hung twice that way in one
/// afternoon. Here nothing is shared: the child gets stdin from /dev/null, stdout and stderr on a file, every other
/// descriptor closed, and default signal handling.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The raw `waitpid` status once reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (a path) with the rest as arguments. Output appends to `outputPath` (or /dev/null), and
    /// errors to `errorPath` (or the same place).
    init(
        _ arguments: [String],
        environment: [String: String]? = nil,
        outputPath: String? = nil,
        errorPath: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        Self.closeFrom(3, &actions)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in env { free(pointer) } }
        // Default dispositions and an empty mask, as a shell would give: this process ignores SIGPIPE (NIO) and
        // may ignore or block SIGCHLD, and a child inheriting that loses its own children's exits (`wait` in sh).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, env)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        self.pid = pid
    }

    var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit code, or 128 + the signal for a child killed by one (as a shell reports it); nil while it runs.
    var terminationStatus: Int32? { reap(blocking: false).map(Self.code) }

    /// Blocks the calling thread until the child exits; call it off Swift's cooperative pool.
    @discardableResult
    func waitUntilExit() -> Int32 { Self.code(reap(blocking: true) ?? 0) }

    func signal(_ signal: Int32) {
        guard isRunning else { return }
        kill(pid, signal)
    }

    private func reap(blocking: Bool) -> Int32? {
        if let status = reaped.withLock({ $0 }) { return status }
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if result == pid {
                reaped.withLock { $0 = status }
                return status
            }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: a concurrent call reaped it; its status is stored (or about to be).
            for _ in 0..<1000 {
                if let status = reaped.withLock({ $0 }) { return status }
                usleep(1000)
            }
            return nil
        }
    }

    private static func code(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not import.
    private static func closeFrom(_ lowest: Int32, _ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest)
    }
}
