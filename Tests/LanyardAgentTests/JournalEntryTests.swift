import Logging
import Testing

@testable import LanyardAgent

@Suite("Journald log fields")
struct JournalEntryTests {
    @Test("metadata keys become journal field names; levels become syslog priorities")
    func fields() {
        #expect(JournalEntry.fieldName("caller.pid") == "CALLER_PID")
        #expect(JournalEntry.fieldName("spiffe.id") == "SPIFFE_ID")
        #expect(JournalEntry.fieldName("_trusted") == "TRUSTED")
        #expect(JournalEntry.fieldName("9lives") == "F9LIVES")
        #expect(JournalEntry.fieldName("sds.error") == "SDS_ERROR")
        #expect(JournalEntry.priority(.critical) == 2)
        #expect(JournalEntry.priority(.warning) == 4)
        #expect(JournalEntry.priority(.debug) == 7)
    }
}
