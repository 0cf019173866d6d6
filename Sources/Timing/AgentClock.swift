public import Foundation

/// Time as the agent sees it, passed to everything that waits or compares times, so tests can move it instead of
/// sleeping (``SystemClock`` in the agent; a manual clock in `LanyardTestSupport`).
public protocol AgentClock: Sendable {
    /// Wall-clock time: certificate validity, renewal and expiry times are in it.
    var now: Date { get }
    /// Time that only moves forward, from an arbitrary origin: for intervals, spacing and cache ages, which must not
    /// jump when the wall clock is stepped.
    var uptime: Duration { get }
    /// Suspends for `duration` of this clock's uptime; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// The system's clocks: `Date` and `ContinuousClock` (which counts on across suspend, as the kernel's
/// `CLOCK_BOOTTIME` does).
public struct SystemClock: AgentClock {
    private static let origin = ContinuousClock.now

    public init() {}

    public var now: Date { Date() }

    public var uptime: Duration { ContinuousClock.now - Self.origin }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}
