import Foundation
import Testing

@testable import SPIFFE

@Suite("JSON parser for JWT headers and claims")
struct JSONParserTests {
    @Test("parses every JSON kind, escapes and surrogate pairs")
    func parses() throws {
        let value = try JSONParser.parse(
            Array(
                #" {"sub":"spiffe://a/b","aud":["x","y"],"exp":1.7e9,"n":-0.5,"t":true,"f":false,"z":null,"s":"\u00e9\ud83d\ude80\n\"","o":{}} "#
                    .utf8
            )
        )
        let object = try #require(value.objectValue)
        #expect(object["sub"] == .string("spiffe://a/b"))
        #expect(object["aud"] == .array([.string("x"), .string("y")]))
        #expect(object["exp"] == .number(1.7e9))
        #expect(object["n"] == .number(-0.5))
        #expect(object["t"] == .bool(true) && object["f"] == .bool(false) && object["z"] == .null)
        #expect(object["s"] == .string("é🚀\n\""))
        #expect(object["o"] == .object([:]))
    }

    @Test(
        "refuses malformed documents, duplicate keys and deep nesting",
        arguments: [
            "", "{", "{\"a\":1,}", "[1,]", "01", "1.", "-", "1e", "\"\\x\"", "\"\\ud800\"", "tru", "{\"a\" 1}",
            "{} {}", "{\"a\":1,\"a\":2}", String(repeating: "[", count: 70) + String(repeating: "]", count: 70),
            "\"a\u{01}b\"", "NaN", "1e999",
        ]
    )
    func refuses(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test("random documents never crash the parser")
    func random() {
        let alphabet = Array("{}[]\",:0123456789.-eEtrufalsn \\u".utf8)
        for _ in 0..<3000 {
            let bytes = (0..<Int.random(in: 0...40)).map { _ in alphabet.randomElement()! }
            _ = try? JSONParser.parse(bytes)
        }
    }
}
