import Testing

@testable import SPIFFE

@Suite("JSON scanner shared by the JWT parser and the pod-list reader")
struct JSONScannerTests {
    private static func scan<T>(
        _ bytes: [UInt8],
        _ body: (inout JSONScanner) throws(JSONScanner.Failure) -> T
    ) throws(JSONScanner.Failure) -> T {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONScanner.Failure) -> T in
                var scanner = JSONScanner(raw)
                return try body(&scanner)
            }
        }.get()
    }

    @Test("a decoded string must be valid UTF-8, with or without escapes; the byte is named")
    func invalidUTF8() {
        for bytes: [UInt8] in [
            [0x22, 0x61, 0xFF, 0x22], [0x22, 0x5C, 0x6E, 0xC3, 0x28, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
        ] {
            #expect(throws: JSONScanner.Failure.self) {
                try Self.scan(bytes) { (s) throws(JSONScanner.Failure) in try s.string() }
            }
            #expect(throws: JSONScanner.Failure.self) { try JSONParser.parse(bytes) }
        }
        do {
            _ = try Self.scan([0x20, 0x22, 0x61, 0xFF, 0x22]) { (s) throws(JSONScanner.Failure) in try s.string() }
        } catch {
            #expect(error.reason == "malformed JSON: invalid UTF-8")
            #expect(error.offset == 4)
        }
    }

    @Test(
        "skipping checks the grammar of what it skips: escapes, numbers, separators",
        arguments: [
            #""\q""#, #""\u12""#, #""\udc00""#, "1-2", "01", "1.", "-", "[1 2]", #"{"a" 1}"#, "{1:2}", "[", #""a"#,
            "tru", "[1,]",
        ]
    )
    func skipRefuses(_ text: String) {
        #expect(throws: JSONScanner.Failure.self) {
            try Self.scan(Array(text.utf8)) { (s) throws(JSONScanner.Failure) in
                try s.skipValue(maximumDepth: 8)
                guard s.isAtEnd() else { throw s.malformed("data after the value") }
            }
        }
    }

    @Test("skipping passes over every kind of value and stops right after it")
    func skipAccepts() throws {
        let text = #" {"a":[1,-2.5e+3,true,false,null,"x\"\u00e9\ud83d\ude80",{},[]],"b":{"c":{}}} ,7"#
        let next = try Self.scan(Array(text.utf8)) { (s) throws(JSONScanner.Failure) in
            try s.skipValue(maximumDepth: 8)
            try s.expect(UInt8(ascii: ","))
            return try s.number()
        }
        #expect(next == 7)
    }

    @Test("skipping is bounded in depth without recursion")
    func skipDepth() {
        let deep = Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        do {
            try Self.scan(deep) { (s) throws(JSONScanner.Failure) in try s.skipValue(maximumDepth: 256) }
            Issue.record("accepted 100,000 levels")
        } catch {
            #expect(error.reason == "nested deeper than 256")
        }
    }
}
