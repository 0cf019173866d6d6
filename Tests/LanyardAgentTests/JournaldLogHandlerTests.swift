import Logging
import Testing

@testable import LanyardAgent

@Suite("Journald log fields")
struct JournaldLogHandlerTests {
    @Test("metadata keys become journal field names; levels become syslog priorities")
    func fields() {
        #expect(JournaldLogHandler.fieldName("caller.pid") == "CALLER_PID")
        #expect(JournaldLogHandler.fieldName("spiffe.id") == "SPIFFE_ID")
        #expect(JournaldLogHandler.fieldName("_trusted") == "TRUSTED")
        #expect(JournaldLogHandler.fieldName("9lives") == "F9LIVES")
        #expect(JournaldLogHandler.fieldName("sds.error") == "SDS_ERROR")
        #expect(JournaldLogHandler.priority(.critical) == 2)
        #expect(JournaldLogHandler.priority(.warning) == 4)
        #expect(JournaldLogHandler.priority(.debug) == 7)
    }
}
