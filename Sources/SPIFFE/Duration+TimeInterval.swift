public import Foundation

extension Duration {
    /// The duration in seconds, for date arithmetic (lifetimes and TTLs meet `Date` everywhere in the agent).
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
