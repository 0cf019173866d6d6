public import Foundation

extension Duration {
    /// The duration in seconds, for date arithmetic (lifetimes and TTLs meet `Date` everywhere in the agent).
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds, as swift-metrics timers record it.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
