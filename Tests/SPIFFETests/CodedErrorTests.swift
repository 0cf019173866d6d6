import SPIFFE
import Testing

@Suite("coded errors")
struct CodedErrorTests {
    struct Code: ErrorCode {
        let name: String
        static let broken = Code(name: "broken")
        static let missing = Code(name: "missing")
        var description: String { name }
    }

    struct Underlying: Error, CustomStringConvertible {
        var description: String { "disk on fire" }
    }

    @Test("errors are equal by code, so callers match kinds and not wording")
    func equalityByCode() {
        #expect(CodedError(Code.broken, "one wording") == CodedError(Code.broken, "another"))
        #expect(CodedError(Code.broken, "same") != CodedError(Code.missing, "same"))
        #expect(Set([CodedError(Code.broken, "a"), CodedError(Code.broken, "b")]).count == 1)
    }

    @Test("the description is the message, followed by the cause when there is one")
    func description() {
        #expect(CodedError(Code.broken, "cannot write state").description == "cannot write state")
        let wrapped = CodedError(Code.broken, "cannot write state", cause: Underlying())
        #expect(wrapped.description == "cannot write state (disk on fire)")
        #expect(wrapped.cause is Underlying)
    }

    @Test("the location names the file and line of the throw")
    func location() {
        let line = #line + 1
        let error = CodedError(Code.missing, "gone")
        #expect(error.location == "SPIFFETests/CodedErrorTests.swift:\(line)")
    }
}
