import Foundation
import Testing

@testable import SPIFFE

@Suite("base64url")
struct Base64URLTests {
    @Test("round trips every length and agrees with Foundation's base64")
    func roundTrip() throws {
        for length in 0..<200 {
            let data = Data((0..<length).map { _ in UInt8.random(in: 0...255) })
            let encoded = data.base64URLEncodedString()
            let standard = data.base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(encoded == standard)
            #expect(Data(base64URLEncoded: encoded) == data)
        }
    }

    @Test(
        "padding, the standard alphabet and impossible lengths are refused",
        arguments: ["YQ==", "a+b/", "abcde", "a b"]
    )
    func refuses(_ text: String) {
        #expect(Data(base64URLEncoded: text) == nil)
    }
}
