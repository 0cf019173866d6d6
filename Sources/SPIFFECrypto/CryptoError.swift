/// An error from `SPIFFECrypto`: what failed, in words fit for a log, and OpenSSL's own error queue.
///
/// Messages never contain key material or tokens. Two errors are equal when their codes are equal.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A growable set of error kinds.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String

        public static let invalidKey = Code(name: "invalid key")
        public static let unsupportedKey = Code(name: "unsupported key")
        public static let invalidPEM = Code(name: "invalid pem")
        public static let invalidCertificate = Code(name: "invalid certificate")
        public static let invalidCSR = Code(name: "invalid csr")
        public static let invalidX509SVID = Code(name: "invalid x509-svid")
        public static let untrustedChain = Code(name: "untrusted chain")
        public static let invalidJWT = Code(name: "invalid jwt-svid")
        public static let issuanceRefused = Code(name: "issuance refused")
        public static let openSSLFailure = Code(name: "openssl failure")

        public var description: String { name }
    }

    public let code: Code
    public let message: String
    /// OpenSSL's error strings at the time of failure, oldest first.
    public let openSSLErrors: [String]

    package init(_ code: Code, _ message: String, openSSLErrors: [String] = []) {
        self.code = code
        self.message = message
        self.openSSLErrors = openSSLErrors
    }

    public var description: String {
        openSSLErrors.isEmpty ? message : "\(message) (openssl: \(openSSLErrors.joined(separator: "; ")))"
    }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
