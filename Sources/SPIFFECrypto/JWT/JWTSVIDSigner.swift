public import Foundation
public import SPIFFE

/// Mints JWT-SVIDs with one authority key, published in the trust bundle under ``keyID``.
///
/// Tokens carry the `alg`, `kid` and `typ: JWT` headers and the `sub`, `aud` (always an array), `exp` and `iat`
/// claims, as SPIRE mints them.
public struct JWTSVIDSigner: Sendable {
    public let privateKey: PrivateKey
    public let keyID: String
    public let algorithm: JWTAlgorithm

    public init(privateKey: PrivateKey, keyID: String, algorithm: JWTAlgorithm? = nil) throws(CryptoError) {
        let algorithm = algorithm ?? JWTAlgorithm.preferred(for: privateKey.algorithm)
        guard algorithm.fits(privateKey.algorithm) else {
            throw CryptoError(
                .unsupportedKey,
                "\(algorithm.rawValue) cannot be made with a \(privateKey.algorithm) key"
            )
        }
        guard !keyID.isEmpty else { throw CryptoError(.invalidKey, "a JWT authority needs a non-empty key id") }
        self.privateKey = privateKey
        self.keyID = keyID
        self.algorithm = algorithm
    }

    /// A key ID derived from the public key (base64url of the first 24 bytes of its SPKI SHA-256), so the same
    /// key always gets the same ID and different keys practically never share one.
    public static func keyID(for publicKey: PublicKey) -> String {
        Digest.sha256(publicKey.spkiDER).prefix(24).base64URLEncodedString()
    }

    /// The entry to publish in the trust bundle so validators find this key.
    public var bundleAuthority: SPIFFEBundle.JWTAuthority {
        get throws(CryptoError) { SPIFFEBundle.JWTAuthority(keyID: keyID, key: try privateKey.publicKey.jwk) }
    }

    /// Signs a JWT-SVID for `spiffeID` and `audience`.
    public func sign(
        spiffeID: SPIFFEID,
        audience: [String],
        expiresAt: Date,
        issuedAt: Date,
        additionalClaims: [String: JSONValue] = [:]
    ) throws(CryptoError) -> JWTSVID {
        guard !audience.isEmpty, audience.allSatisfy({ !$0.isEmpty }) else {
            throw CryptoError(.issuanceRefused, "a JWT-SVID needs at least one non-empty audience")
        }
        guard expiresAt > issuedAt else { throw CryptoError(.issuanceRefused, "expiry must be after issuance") }
        var claims = additionalClaims
        claims["sub"] = .string(spiffeID.description)
        claims["aud"] = .array(audience.map(JSONValue.string))
        claims["exp"] = .number(expiresAt.timeIntervalSince1970.rounded(.down))
        claims["iat"] = .number(issuedAt.timeIntervalSince1970.rounded(.down))
        let header: [String: JSONValue] = [
            "alg": .string(algorithm.rawValue), "kid": .string(keyID), "typ": .string("JWT"),
        ]
        return JWTSVID(
            token: try CompactJWS.sign(header: header, claims: claims, key: privateKey, algorithm: algorithm),
            spiffeID: spiffeID,
            audience: audience,
            expiresAt: Date(timeIntervalSince1970: expiresAt.timeIntervalSince1970.rounded(.down)),
            issuedAt: Date(timeIntervalSince1970: issuedAt.timeIntervalSince1970.rounded(.down)),
            claims: claims
        )
    }
}
