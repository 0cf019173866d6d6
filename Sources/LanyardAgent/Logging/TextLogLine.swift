import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One line per event on standard error (`log_format = "text"` outside the journal):
/// `2026-12-02T18:31:54Z warning lanyard: caller refused uid=1000 …`.
///
/// Messages and metadata values can carry what a client sent (an Envoy NACK's error detail, a requested audience, a
/// resource name), so control characters and Unicode line separators are escaped (`\n`, `\u{1b}`): a client can
/// never start a line of its own in the log, or send escape sequences to an operator's terminal.
enum TextLogLine {
    /// The formatted line, newline included; `metadata` is the logger's and the event's together.
    static func line(for event: LogEvent, label: String, metadata: Logger.Metadata) -> String {
        var line = LogTimestamp.now() + " \(event.level) \(Self.escape(label)):"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " \(Self.escape(key))=\(Self.escape("\(value)"))"
        }
        line += " " + Self.escape("\(event.message)") + "\n"
        return line
    }

    /// `text` with every control character, DEL and Unicode line or paragraph separator written as an escape.
    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where needsEscape(scalar): escaped += "\\u{\(String(scalar.value, radix: 16))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029: true
        default: false
        }
    }
}

/// The time at the start of every text and JSON log line, in UTC with seconds (`2026-12-02T18:31:54Z`), formatted
/// with `strftime` rather than a Foundation date formatter per line.
enum LogTimestamp {
    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
