import Synchronization
public import Timing

/// Lets a log line through at most once per interval for each key, counting what it held back, so that a caller
/// who triggers a warning in a loop (a flood of refused connections, an Envoy that NACKs every push) writes one
/// line per second, not one per attempt.
public final class LogThrottle: Sendable {
    private struct Slot {
        /// The clock's uptime at the last line logged.
        var last: Duration
        var suppressed: Int
    }

    let interval: Duration
    /// At most this many keys are remembered; a caller cycling through keys cannot grow the table.
    static let maximumKeys = 1024
    private let slots = Mutex<[String: Slot]>([:])
    private let clock: any AgentClock

    public init(interval: Duration = .seconds(1), clock: any AgentClock = SystemClock()) {
        self.interval = interval
        self.clock = clock
    }

    /// Whether to log now for `key`, and how many lines were held back since the last one logged.
    public func admit(_ key: String) -> (log: Bool, suppressed: Int) {
        let now = clock.uptime
        return slots.withLock { slots in
            if var slot = slots[key] {
                guard now - slot.last >= interval else {
                    slot.suppressed += 1
                    slots[key] = slot
                    return (false, 0)
                }
                slots[key] = Slot(last: now, suppressed: 0)
                return (true, slot.suppressed)
            }
            if slots.count >= Self.maximumKeys { slots.removeAll() }
            slots[key] = Slot(last: now, suppressed: 0)
            return (true, 0)
        }
    }
}
