internal import COpenSSL

/// The JWS algorithms a JWT-SVID may use (the spec's allow-list); everything else, `none` and HMAC included,
/// is refused.
public enum JWTAlgorithm: String, Hashable, Sendable, CaseIterable {
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case es256 = "ES256"
    case es384 = "ES384"
    case es512 = "ES512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"

    /// The algorithm Lanyard signs with for a key: ES256/ES384/ES512 by curve, RS256 for RSA.
    public static func preferred(for algorithm: KeyAlgorithm) -> JWTAlgorithm {
        switch algorithm {
        case .ec(.p256): .es256
        case .ec(.p384): .es384
        case .ec(.p521): .es512
        case .rsa: .rs256
        }
    }

    /// Whether a key of `algorithm` can make or check this signature.
    public func fits(_ algorithm: KeyAlgorithm) -> Bool {
        switch (self, algorithm) {
        case (.es256, .ec(.p256)), (.es384, .ec(.p384)), (.es512, .ec(.p521)): true
        case (.rs256, .rsa), (.rs384, .rsa), (.rs512, .rsa), (.ps256, .rsa), (.ps384, .rsa), (.ps512, .rsa): true
        default: false
        }
    }

    var digest: OpaquePointer? {
        switch self {
        case .rs256, .es256, .ps256: EVP_sha256()
        case .rs384, .es384, .ps384: EVP_sha384()
        case .rs512, .es512, .ps512: EVP_sha512()
        }
    }

    var usesPSS: Bool { [.ps256, .ps384, .ps512].contains(self) }
    var isECDSA: Bool { [.es256, .es384, .es512].contains(self) }
}
