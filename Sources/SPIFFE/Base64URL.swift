package import Foundation

extension Data {
    /// Decodes unpadded base64url (RFC 4648 §5), as JWS and JWK use it. Padding and any other alphabet are refused.
    package init?(base64URLEncoded string: some StringProtocol) {
        self.init(base64URLEncoded: Substring(string))
    }

    /// The same for a token segment, without generic dispatch.
    package init?(base64URLEncoded string: Substring) {
        guard let bytes = [UInt8](base64URLEncoded: string) else { return nil }
        self = Data(bytes)
    }

    /// Encodes as unpadded base64url.
    package func base64URLEncodedString() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var output: [UInt8] = []
        output.reserveCapacity((count * 4 + 2) / 3)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in self {
            accumulator = accumulator << 8 | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                output.append(alphabet[Int(accumulator >> UInt32(bits) & 0x3F)])
            }
        }
        if bits > 0 { output.append(alphabet[Int(accumulator << UInt32(6 - bits) & 0x3F)]) }
        return String(decoding: output, as: UTF8.self)
    }
}

extension [UInt8] {
    /// Decodes unpadded base64url straight from the string's UTF-8 bytes. JWT validation decodes three segments per
    /// token: going through Foundation's string replacement cost more than the signature check, and a generic
    /// decoder (not specialized across modules) still cost a twentieth of it.
    package init?(base64URLEncoded string: Substring) {
        var string = string
        guard let decoded = string.withUTF8({ Self.decodeBase64URL($0) }) else { return nil }
        self = decoded
    }

    private static func decodeBase64URL(_ utf8: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard utf8.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }
}
