public import Foundation
public import SPIFFE

/// Parses and validates JWT-SVIDs by the JWT-SVID spec, as SPIRE and go-spiffe do.
///
/// The order matters: structure and headers first, then the signature with the key the `kid` names in the
/// bundle of the subject's trust domain, and only then the claims, so nothing from an unverified token is trusted.
public struct JWTSVIDValidator: Sendable {
    /// Tokens longer than this are refused before any parsing.
    public var maximumTokenLength: Int
    /// Leeway for `exp`, `nbf` and `iat` against the validator's clock.
    public var clockSkew: TimeInterval
    /// OpenSSL keys built from bundle JWKs, reused across tokens: building one costs several times a verification.
    private let keys = PublicKeyCache()

    public init(maximumTokenLength: Int = 16 * 1024, clockSkew: TimeInterval = 30) {
        self.maximumTokenLength = maximumTokenLength
        self.clockSkew = clockSkew
    }

    /// Header parameters a JWT-SVID may carry.
    static let allowedHeaders: Set<String> = ["alg", "kid", "typ"]

    /// Validates `token` for `audience` at `now`, looking authorities up in the bundle of the token's trust domain.
    public func validate(
        _ token: String,
        audience: String,
        bundles: (TrustDomain) -> SPIFFEBundle?,
        at now: Date
    ) throws(CryptoError) -> JWTSVID {
        let jws = try CompactJWS(token, maximumLength: maximumTokenLength)
        let header = jws.header
        let (algorithm, keyID) = try jws.algorithmAndKeyID()
        if let type = header["typ"] {
            guard type == .string("JWT") || type == .string("JOSE") else {
                throw invalid("token header type must be JWT or JOSE")
            }
        }
        if let extra = header.keys.sorted().first(where: { !Self.allowedHeaders.contains($0) }) {
            throw invalid("token header has unexpected parameter \"\(extra)\"")
        }
        let claims = jws.claims
        let spiffeID = try jws.subject()
        guard let bundle = bundles(spiffeID.trustDomain) else {
            throw invalid("no JWT bundle for trust domain \(spiffeID.trustDomain)")
        }
        guard let jwk = bundle.jwtAuthority(keyID: keyID) else {
            throw invalid("no JWT authority found for key id \"\(keyID)\" in trust domain \(spiffeID.trustDomain)")
        }
        try jws.verifySignature(key: try keys.key(for: jwk), algorithm: algorithm)
        let expiresAt = try jws.checkValidity(at: now, clockSkew: clockSkew)
        var issuedAt: Date? = nil
        if let iat = claims["iat"] {
            guard let seconds = iat.numberValue else { throw invalid("token iat claim is not a number") }
            guard now.timeIntervalSince1970 + clockSkew >= seconds else {
                throw invalid("token was issued in the future")
            }
            issuedAt = Date(timeIntervalSince1970: seconds)
        }
        let audiences = try Self.audiences(claims["aud"])
        guard audiences.contains(audience) else {
            throw invalid("expected audience in \(audiences) (audience=\"\(audience)\")")
        }
        return JWTSVID(
            token: token,
            spiffeID: spiffeID,
            audience: audiences,
            expiresAt: expiresAt,
            issuedAt: issuedAt,
            claims: claims
        )
    }

    /// `aud` as a list: a single string becomes a one-element list, as SPIRE normalises it.
    private static func audiences(_ claim: JSONValue?) throws(CryptoError) -> [String] {
        switch claim {
        case .string(let audience)?:
            return [audience]
        case .array(let values)?:
            let strings = values.compactMap(\.stringValue)
            guard !strings.isEmpty, strings.count == values.count else {
                throw CryptoError(.invalidJWT, "token audience must be a non-empty list of strings")
            }
            return strings
        default:
            throw CryptoError(.invalidJWT, "token has no audience claim")
        }
    }

    private func invalid(_ message: String) -> CryptoError { CryptoError(.invalidJWT, message) }
}
