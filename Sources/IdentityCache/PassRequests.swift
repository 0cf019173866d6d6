import Synchronization

/// Work asked of the rotation loop from outside it — passes for a configuration reload, on-demand mints for the
/// callers of a bounded cache: the loop runs it itself, so two passes or mints never overlap and never sign the same
/// entries twice (in fleet mode, two `BatchNewX509SVID` calls).
package final class PassRequests: Sendable {
    private struct State {
        /// Callers waiting for the next pass, answered with the number of SVIDs it minted.
        var waiters: [UInt64: CheckedContinuation<Int, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Callers that asked but are not registered yet; one missing from here and from `waiters` was cancelled
        /// or answered.
        var unregistered: Set<UInt64> = []
        /// The loop, asleep until a request comes.
        var sleeper: CheckedContinuation<Void, Never>?
        /// The loop's wait was cancelled before it went to sleep.
        var wakeCancelled = false
    }

    private let state = Mutex(State())

    package init() {}

    /// Asks for a pass and waits until one that started after this call has finished; 0 if the caller is
    /// cancelled first or the loop stops.
    package func pass() async -> Int {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            state.unregistered.insert(state.nextWaiter)
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (sleeper, cancelled) = state.withLock { state in
                    guard state.unregistered.remove(id) != nil else {
                        return (nil as CheckedContinuation<Void, Never>?, true)
                    }
                    state.waiters[id] = continuation
                    defer { state.sleeper = nil }
                    return (state.sleeper, false)
                }
                if cancelled { continuation.resume(returning: 0) }
                sleeper?.resume()
            }
        } onCancel: {
            let waiter = state.withLock { state in
                state.unregistered.remove(id)
                return state.waiters.removeValue(forKey: id)
            }
            waiter?.resume(returning: 0)
        }
    }

    /// For the loop: returns when a pass is requested (at once if one is waiting), or when the calling task is
    /// cancelled.
    func waitForRequest() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if !state.waiters.isEmpty || state.wakeCancelled {
                        state.wakeCancelled = false
                        return true
                    }
                    state.sleeper = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { state in
                defer { state.sleeper = nil }
                if state.sleeper == nil { state.wakeCancelled = true }
                return state.sleeper
            }
            sleeper?.resume()
        }
    }

    /// For the loop, as a pass starts: the requests it answers.
    func take() -> [CheckedContinuation<Int, Never>] {
        state.withLock { state in
            state.wakeCancelled = false
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
    }
}
