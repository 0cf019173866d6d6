import CSystemd
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Structured entries straight to the journal when standard error is the journal (`JOURNAL_STREAM`), so metadata
/// such as `caller.pid` or `spiffe.id` become searchable fields (`journalctl CALLER_PID=1234`).
enum JournalEntry {
    /// Whether systemd connected standard error to the journal.
    static var isStandardErrorTheJournal: Bool { lanyard_stderr_is_journal() == 1 }

    /// Sends one entry; `metadata` is the logger's and the event's together.
    static func send(_ event: LogEvent, label: String, metadata: Logger.Metadata) {
        var fields = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=lanyard",
            "LANYARD_LOGGER=\(label)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append("\(Self.fieldName(key))=\(value)")
        }
        var pointers = fields.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { rebound in
                _ = lanyard_journal_send(rebound.baseAddress, Int32(rebound.count))
            }
        }
    }

    /// syslog priorities, as the journal expects them.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `caller.pid` → `CALLER_PID`: journal field names are uppercase letters, digits and underscores, and do not
    /// start with an underscore (those are trusted fields the journal sets itself).
    static func fieldName(_ key: String) -> String {
        var name = String(
            key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }
        )
        while name.hasPrefix("_") { name.removeFirst() }
        if name.first?.isNumber ?? true { name = "F" + name }
        return String(name.prefix(64))
    }
}
