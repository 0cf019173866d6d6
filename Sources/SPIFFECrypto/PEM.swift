public import SPIFFE
public import Foundation

/// RFC 7468 textual encoding: `-----BEGIN LABEL-----`, base64 body, `-----END LABEL-----`.
///
/// Parsed in Swift rather than by OpenSSL so a malformed file gets a message that says what is wrong and where.
public enum PEM {
    public struct Block: Hashable, Sendable {
        public var label: String
        public var der: Data

        public init(label: String, der: Data) {
            self.label = label
            self.der = der
        }
    }

    /// Every block in `text`, in order. Text outside blocks is ignored (as `openssl` does for explanatory text);
    /// an unterminated block, mismatched labels or a bad body are errors.
    public static func blocks(in text: String) throws(CryptoError) -> [Block] {
        var blocks: [Block] = []
        var current: (label: String, body: String, line: Int)? = nil
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            let number = index + 1
            if let open = current {
                if line.hasPrefix("-----END ") {
                    guard line == "-----END \(open.label)-----" else {
                        throw CryptoError(.invalidPEM, "line \(number): END does not match BEGIN \(open.label)")
                    }
                    guard let der = Data(base64Encoded: open.body), !der.isEmpty else {
                        throw CryptoError(
                            .invalidPEM,
                            "block \(open.label) at line \(open.line) has a body that is not base64"
                        )
                    }
                    blocks.append(Block(label: open.label, der: der))
                    current = nil
                } else if line.hasPrefix("-----BEGIN ") {
                    throw CryptoError(
                        .invalidPEM,
                        "line \(number): BEGIN inside block \(open.label) started at line \(open.line)"
                    )
                } else if line.contains(":") {
                    // RFC 1421 headers (Proc-Type, DEK-Info) mark legacy encrypted keys.
                    throw CryptoError(
                        .unsupportedKey,
                        "block \(open.label) at line \(open.line) is encrypted; store it unencrypted"
                    )
                } else {
                    current?.body += line
                }
            } else if line.hasPrefix("-----BEGIN ") {
                guard line.hasSuffix("-----"), line.count > 16 else {
                    throw CryptoError(.invalidPEM, "line \(number): malformed BEGIN line")
                }
                let label = String(line.dropFirst(11).dropLast(5))
                current = (label, "", number)
            }
        }
        if let open = current {
            throw CryptoError(.invalidPEM, "block \(open.label) started at line \(open.line) has no END line")
        }
        return blocks
    }

    /// Encodes one block with 64-character lines.
    public static func encode(label: String, der: Data) -> String {
        let body = der.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }
}
