import Synchronization

/// Runs an action once each of a fixed number of listeners has reported (or given up): the agent says it is ready
/// (READY=1, the caller's `onReady`) only when both the Workload API and the admin socket accept connections, so a
/// `lanyard status` right after start never finds the admin socket missing.
final class ListeningBarrier: Sendable {
    private let remaining: Mutex<Int>
    private let action: @Sendable () -> Void

    init(parties: Int, action: @escaping @Sendable () -> Void) {
        remaining = Mutex(parties)
        self.action = action
    }

    /// One listener is up (or will never be); the last one runs the action, once.
    func arrive() {
        let last = remaining.withLock { count in
            count -= 1
            return count == 0
        }
        if last { action() }
    }
}
