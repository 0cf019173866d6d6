import Foundation
import Logging

/// One JSON object per line on standard error (`log_format = "json"`), for log shippers.
enum JSONLogLine {
    /// The object's line, newline included; `metadata` is the logger's and the event's together.
    static func line(for event: LogEvent, label: String, metadata: Logger.Metadata) -> Data? {
        var object: [String: String] = [
            "time": LogTimestamp.now(),
            "level": "\(event.level)",
            "logger": label,
            "msg": "\(event.message)",
        ]
        for (key, value) in metadata { object[key] = "\(value)" }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return nil }
        line.append(0x0A)
        return line
    }
}
