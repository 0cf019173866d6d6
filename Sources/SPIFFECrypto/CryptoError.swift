public import SPIFFE

/// An error from `SPIFFECrypto`: what failed, in words fit for a log, with OpenSSL's own error queue as its cause.
/// Messages never contain key material or tokens.
public typealias CryptoError = CodedError<CryptoErrorCode>

public struct CryptoErrorCode: ErrorCode {
    let name: String

    public static let invalidKey = Self(name: "invalid key")
    public static let unsupportedKey = Self(name: "unsupported key")
    public static let invalidPEM = Self(name: "invalid pem")
    public static let invalidCertificate = Self(name: "invalid certificate")
    public static let invalidCSR = Self(name: "invalid csr")
    public static let invalidX509SVID = Self(name: "invalid x509-svid")
    public static let untrustedChain = Self(name: "untrusted chain")
    public static let invalidJWT = Self(name: "invalid jwt-svid")
    public static let issuanceRefused = Self(name: "issuance refused")
    public static let openSSLFailure = Self(name: "openssl failure")

    public var description: String { name }
}

/// OpenSSL's error strings at the time of a failure, oldest first.
public struct OpenSSLErrorQueue: Error, Sendable, CustomStringConvertible {
    public let errors: [String]

    public var description: String { "openssl: \(errors.joined(separator: "; "))" }
}

extension CodedError where Code == CryptoErrorCode {
    /// A crypto error whose cause is OpenSSL's error queue (none when `openSSLErrors` is empty).
    package init(_ code: Code, _ message: String, openSSLErrors: [String], file: StaticString = #fileID, line: UInt = #line) {
        self.init(
            code,
            message,
            cause: openSSLErrors.isEmpty ? nil : OpenSSLErrorQueue(errors: openSSLErrors),
            file: file,
            line: line
        )
    }

    /// OpenSSL's error strings at the time of failure, oldest first.
    public var openSSLErrors: [String] { (cause as? OpenSSLErrorQueue)?.errors ?? [] }
}
