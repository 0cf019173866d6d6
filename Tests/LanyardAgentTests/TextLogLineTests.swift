import Logging
import Testing

@testable import LanyardAgent

@Suite("Text log lines")
struct TextLogLineTests {
    func event(_ message: Logger.Message, _ metadata: Logger.Metadata) -> LogEvent {
        LogEvent(
            level: .warning,
            message: message,
            metadata: metadata,
            source: "t",
            file: #fileID,
            function: #function,
            line: #line
        )
    }

    @Test("what a client sent cannot start a log line of its own or reach the terminal as an escape sequence")
    func escapesClientStrings() {
        let forged = "bad cert\n2026-12-02T00:00:00Z critical lanyard: issued root identity\u{1b}[2J\u{2028}x"
        let metadata: Logger.Metadata = ["sds.error": "\(forged)", "caller.pid": "42"]
        let line = TextLogLine.line(
            for: event("envoy rejected secrets (NACK)", metadata),
            label: "lanyard",
            metadata: metadata
        )
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"), "one line, ended once")
        #expect(!line.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x2028 })
        #expect(line.contains("sds.error=bad cert\\n2026-12-02T00:00:00Z critical"))
        #expect(line.contains("\\u{1b}[2J\\u{2028}x"))
        #expect(line.contains(" warning lanyard: caller.pid=42 sds.error="))
        #expect(line.hasSuffix("envoy rejected secrets (NACK)\n"))
    }

    @Test("plain text is left alone")
    func plain() {
        #expect(TextLogLine.escape("spiffe://example.org/web é") == "spiffe://example.org/web é")
        #expect(TextLogLine.escape("a\tb\r") == "a\\tb\\r")
    }
}
