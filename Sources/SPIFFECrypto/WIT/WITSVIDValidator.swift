public import Foundation
public import SPIFFE

/// Validates WIT-SVIDs by the WIT-SVID standard: structure and header (`typ` `wit+jwt`, an allowed `alg`, a `kid`,
/// no `crit`), then the signature with the bundle's WIT authority (`use` `wit-svid`, never a JWT-SVID key) for the
/// subject's trust domain, then the claims: `sub` a SPIFFE ID, `exp` not past, `nbf` not future, no `aud`, and a
/// `cnf.jwk` public key with an allowed `alg` that fits it.
///
/// A valid WIT-SVID proves nothing by itself: the presenter must also prove possession of the `cnf` key, which is
/// the presentation protocol's job, not this type's.
public struct WITSVIDValidator: Sendable {
    public var maximumTokenLength: Int
    /// Leeway for `exp` and `nbf`.
    public var clockSkew: TimeInterval
    private let keys = PublicKeyCache()

    public init(maximumTokenLength: Int = 16 * 1024, clockSkew: TimeInterval = 30) {
        self.maximumTokenLength = maximumTokenLength
        self.clockSkew = clockSkew
    }

    public func validate(
        _ token: String,
        bundles: (TrustDomain) -> SPIFFEBundle?,
        at now: Date
    ) throws(CryptoError) -> WITSVID {
        let jws = try CompactJWS(token, maximumLength: maximumTokenLength)
        let header = jws.header
        guard header["typ"] == .string(WITSVIDSigner.tokenType) else { throw invalid("token type must be wit+jwt") }
        let (algorithm, keyID) = try jws.algorithmAndKeyID()
        guard header["crit"] == nil else {
            throw invalid("token header has critical parameters this validator does not know")
        }
        let claims = jws.claims
        let spiffeID = try jws.subject()
        guard let bundle = bundles(spiffeID.trustDomain) else {
            throw invalid("no bundle for trust domain \(spiffeID.trustDomain)")
        }
        guard let jwk = bundle.witAuthority(keyID: keyID) else {
            throw invalid("no WIT authority found for key id \"\(keyID)\" in trust domain \(spiffeID.trustDomain)")
        }
        try jws.verifySignature(key: try keys.key(for: jwk), algorithm: algorithm)
        let expiresAt = try jws.checkValidity(at: now, clockSkew: clockSkew)
        var issuedAt: Date? = nil
        if let iat = claims["iat"] {
            guard let seconds = iat.numberValue else { throw invalid("token iat claim is not a number") }
            issuedAt = Date(timeIntervalSince1970: seconds)
        }
        guard claims["aud"] == nil else { throw invalid("a WIT-SVID must not have an audience claim") }
        let (confirmationKey, confirmationAlgorithm) = try confirmation(claims["cnf"])
        return WITSVID(
            token: token,
            spiffeID: spiffeID,
            expiresAt: expiresAt,
            issuedAt: issuedAt,
            keyID: keyID,
            confirmationKey: confirmationKey,
            confirmationAlgorithm: confirmationAlgorithm,
            claims: claims
        )
    }

    /// `cnf.jwk`: a public key (no private members) with an allowed `alg` that fits it.
    private func confirmation(_ claim: JSONValue?) throws(CryptoError) -> (JSONWebKey, JWTAlgorithm) {
        guard let cnf = claim?.objectValue else { throw invalid("token has no cnf claim") }
        guard let jwk = cnf["jwk"]?.objectValue else { throw invalid("token cnf claim has no jwk") }
        guard let algorithmName = jwk["alg"]?.stringValue, let algorithm = JWTAlgorithm(rawValue: algorithmName) else {
            throw invalid("token cnf.jwk.alg is missing or not allowed")
        }
        guard jwk["d"] == nil else { throw invalid("token cnf.jwk holds a private key") }
        guard let keyType = jwk["kty"]?.stringValue else { throw invalid("token cnf.jwk has no kty") }
        let key = JSONWebKey(
            keyType: keyType,
            curve: jwk["crv"]?.stringValue,
            x: jwk["x"]?.stringValue,
            y: jwk["y"]?.stringValue,
            modulus: jwk["n"]?.stringValue,
            exponent: jwk["e"]?.stringValue
        )
        let publicKey: PublicKey
        do {
            publicKey = try PublicKey(jwk: key)
        } catch {
            throw invalid("token cnf.jwk is not a usable public key: \(error.message)")
        }
        guard algorithm.fits(publicKey.algorithm) else {
            throw invalid("token cnf.jwk.alg \(algorithm.rawValue) does not fit its \(publicKey.algorithm) key")
        }
        return (key, algorithm)
    }

    private func invalid(_ message: String) -> CryptoError { CryptoError(.invalidJWT, message) }
}
