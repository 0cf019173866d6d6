package import Foundation
import SPIFFE
import Synchronization
package import Timing

/// A clock that moves only when a test says so: ``advance(by:)`` moves wall time and uptime together and wakes every
/// sleeper whose time has come; ``stepWallClock(by:)`` moves the wall clock alone, as an NTP step or a suspend does.
/// Tests advance it instead of sleeping, and wait for what the advance causes (a stream update, a request) instead of
/// guessing how long it takes.
package final class ManualClock: AgentClock {
    private struct Sleeper {
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var uptime: Duration = .seconds(1000)
        var sleepers: [UInt64: Sleeper] = [:]
        var cancelled: Set<UInt64> = []
        var next: UInt64 = 0
    }

    private let state: Mutex<State>

    package init(now: Date = Date()) {
        state = Mutex(State(now: now))
    }

    package var now: Date { state.withLock { $0.now } }

    package var uptime: Duration { state.withLock { $0.uptime } }

    /// Tasks asleep on this clock now.
    package var sleepers: Int { state.withLock { $0.sleepers.count } }

    package func sleep(for duration: Duration) async throws {
        let id = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Result<Void, any Error>? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if duration <= .zero { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: state.uptime + duration, continuation: continuation)
                    return nil
                }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        } onCancel: {
            let sleeper = state.withLock { state in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil as Sleeper?
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves wall time and uptime forward by `duration` and wakes every sleeper whose deadline has passed.
    package func advance(by duration: Duration) {
        let woken = state.withLock { state in
            state.now += duration.timeInterval
            state.uptime += duration
            let due = state.sleepers.filter { $0.value.deadline <= state.uptime }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// The uptime at which the next sleeper wakes, if any sleeps.
    package var nextWake: Duration? { state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    /// Moves time to the next sleeper's deadline (as a discrete-event simulation does) and returns how far it moved;
    /// zero when nothing sleeps.
    @discardableResult
    package func advanceToNextWake() -> Duration {
        guard let next = nextWake else { return .zero }
        let step = max(.zero, next - uptime)
        advance(by: step)
        return step
    }

    /// Moves time from one wake-up to the next until `done()` holds or `limit` of clock time has passed; returns
    /// whether `done()` holds. Before the first move it waits until `sleepers` tasks sleep; after each move it waits
    /// until the loops it woke have gone back to sleep (their pass is over, however slow the machine) and lets what
    /// they sent arrive. When the next wake-up lies beyond `limit`, what is still in flight gets `grace` of real time.
    package func run(
        until done: @Sendable () -> Bool,
        sleepers count: Int = 1,
        limit: Duration,
        grace: Duration = .seconds(10)
    ) async throws -> Bool {
        let end = uptime + limit
        try await waitForSleepers(count)
        while !done() {
            try await Task.sleep(for: .milliseconds(20))
            if done() { return true }
            guard let next = nextWake, next <= end else {
                return try await waitInRealTime(for: done, timeout: grace)
            }
            await advanceToNextWakeAndSettle()
        }
        return true
    }

    /// Keeps time moving in the background for code that simply waits for what time brings (a renewal pushed to a
    /// stream): whenever `sleepers` tasks sleep and the loops woken last have gone back to sleep, time jumps to the
    /// next wake-up, at most `step` at a time. Cancel the task to stop it.
    package func autoAdvance(sleepers count: Int = 1, step: Duration = .seconds(3600)) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                guard (try? await waitForSleepers(count)) != nil else { return }
                try? await Task.sleep(for: .milliseconds(20))
                guard let next = nextWake, sleepers >= count else { continue }
                await advanceAndSettle(by: min(step, max(.zero, next - uptime)))
            }
        }
    }

    /// Moves to the next wake-up, then waits until the loops it woke sleep again.
    private func advanceToNextWakeAndSettle() async {
        guard let next = nextWake else { return }
        await advanceAndSettle(by: max(.zero, next - uptime))
    }

    /// Advances, then waits (up to 5 s of real time: a sleeper that does not loop never comes back) until as many
    /// tasks sleep as did before, which is when every loop the advance woke has finished its pass.
    private func advanceAndSettle(by step: Duration) async {
        let before = sleepers
        advance(by: step)
        let deadline = ContinuousClock.now + .seconds(5)
        while sleepers < before, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Polls `done()` in real time until it holds or `timeout` passes.
    /// Waits in real time, the clock standing still, until `done()` holds or `timeout` passes; returns whether it holds.
    package func waitInRealTime(for done: @Sendable () -> Bool, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !done() {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Moves the wall clock alone (forward or back); sleepers, which count uptime, stay asleep.
    package func stepWallClock(by duration: Duration) {
        state.withLock { $0.now += duration.timeInterval }
    }

    /// Waits (in real time, up to `timeout`) until at least `count` tasks sleep on this clock: a loop that has gone to
    /// sleep has finished its pass.
    package func waitForSleepers(_ count: Int = 1, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while sleepers < count {
            guard ContinuousClock.now < deadline else {
                throw ManualClockError("no \(count) sleepers on the manual clock within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

struct ManualClockError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
