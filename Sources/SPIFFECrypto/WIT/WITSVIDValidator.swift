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
        guard token.utf8.count <= maximumTokenLength else {
            throw invalid("token is \(token.utf8.count) bytes; the limit is \(maximumTokenLength)")
        }
        let segments = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(
            Substring.init
        )
        guard segments.count == 3 else {
            throw invalid("token must have three dot-separated segments, found \(segments.count)")
        }
        let header = try object(segments[0], name: "header")
        guard header["typ"] == .string(WITSVIDSigner.tokenType) else { throw invalid("token type must be wit+jwt") }
        guard let algorithmName = header["alg"]?.stringValue else { throw invalid("token header has no algorithm") }
        guard let algorithm = JWTAlgorithm(rawValue: algorithmName) else {
            throw invalid("token algorithm \"\(algorithmName)\" is not allowed")
        }
        guard let keyID = header["kid"]?.stringValue, !keyID.isEmpty else {
            throw invalid("token header missing key id")
        }
        guard header["crit"] == nil else {
            throw invalid("token header has critical parameters this validator does not know")
        }
        let claims = try object(segments[1], name: "claims")
        guard let subject = claims["sub"]?.stringValue else { throw invalid("token has no subject claim") }
        let spiffeID: SPIFFEID
        do {
            spiffeID = try SPIFFEID(subject)
        } catch {
            throw invalid("token subject is not a valid spiffe id: \(error)")
        }
        guard let bundle = bundles(spiffeID.trustDomain) else {
            throw invalid("no bundle for trust domain \(spiffeID.trustDomain)")
        }
        guard let jwk = bundle.witAuthority(keyID: keyID) else {
            throw invalid("no WIT authority found for key id \"\(keyID)\" in trust domain \(spiffeID.trustDomain)")
        }
        let key = try keys.key(for: jwk)
        guard algorithm.fits(key.algorithm) else {
            throw invalid("token algorithm \(algorithm.rawValue) does not fit the \(key.algorithm) authority key")
        }
        guard let signature = Data(base64URLEncoded: segments[2]), !signature.isEmpty else {
            throw invalid("token signature is not base64url")
        }
        let signingInput = Data(token.utf8.prefix(segments[0].utf8.count + 1 + segments[1].utf8.count))
        guard JWSSignature.verify(signature, over: signingInput, key: key, algorithm: algorithm) else {
            throw invalid("token signature does not verify")
        }
        guard let exp = claims["exp"]?.numberValue else { throw invalid("token has no expiry claim") }
        guard now.timeIntervalSince1970 <= exp + clockSkew else { throw invalid("token has expired") }
        if let nbf = claims["nbf"] {
            guard let notBefore = nbf.numberValue else { throw invalid("token nbf claim is not a number") }
            guard now.timeIntervalSince1970 + clockSkew >= notBefore else { throw invalid("token is not valid yet") }
        }
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
            expiresAt: Date(timeIntervalSince1970: exp),
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

    private func object(_ segment: Substring, name: String) throws(CryptoError) -> [String: JSONValue] {
        guard let bytes = [UInt8](base64URLEncoded: segment) else { throw invalid("token \(name) is not base64url") }
        guard let value = try? JSONParser.parse(bytes), let object = value.objectValue else {
            throw invalid("token \(name) is not a JSON object")
        }
        return object
    }

    private func invalid(_ message: String) -> CryptoError { CryptoError(.invalidJWT, message) }
}
