/// How long to wait before trying again after consecutive failures: doubling from `initial` up to `maximum`, each
/// wait spread by ±`jitter` so a fleet of agents does not return to a recovered server in step.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    /// The spread of each wait as a fraction of it (0.2: between 80 % and 120 %).
    public var jitter: Double

    public init(initial: Duration, maximum: Duration, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The wait after `failures` consecutive failures (1 for the first); `random` in 0...1 picks the point in the
    /// jitter band.
    public func delay(afterFailures failures: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let doublings = min(max(failures - 1, 0), 30)
        var wait = initial * (1 << doublings)
        if wait > maximum || wait < .zero { wait = maximum }
        let factor = 1 - jitter + 2 * jitter * min(max(random, 0), 1)
        return wait * factor
    }
}
