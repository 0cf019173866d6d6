package import Foundation

extension Data {
    /// Decodes unpadded base64url (RFC 4648 §5), as JWS and JWK use it. Padding and any other alphabet are refused.
    package init?(base64URLEncoded string: some StringProtocol) {
        guard string.utf8.allSatisfy(Self.isBase64URLByte), string.utf8.count % 4 != 1 else { return nil }
        var standard = string.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        self.init(base64Encoded: standard)
    }

    /// Encodes as unpadded base64url.
    package func base64URLEncodedString() -> String {
        var string = base64EncodedString()
        string = string.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while string.last == "=" { string.removeLast() }
        return string
    }

    private static func isBase64URLByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}
