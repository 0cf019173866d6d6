public import Foundation
public import SPIFFE

/// Mints WIT-SVIDs with one authority key, published in the trust bundle (`use` `wit-svid`) under ``keyID``.
///
/// Header: `alg`, `kid`, `typ` `wit+jwt` and nothing else. Claims: `sub`, `exp`, `iat`, a random `jti`, and
/// `cnf.jwk` (the workload's public key with its `alg`); never `aud`, which the standard forbids.
public struct WITSVIDSigner: Sendable {
    public let privateKey: PrivateKey
    public let keyID: String
    public let algorithm: JWTAlgorithm

    public static let tokenType = "wit+jwt"

    public init(privateKey: PrivateKey, keyID: String) throws(CryptoError) {
        guard !keyID.isEmpty else { throw CryptoError(.invalidKey, "a WIT authority needs a non-empty key id") }
        self.privateKey = privateKey
        self.keyID = keyID
        self.algorithm = JWTAlgorithm.preferred(for: privateKey.algorithm)
    }

    /// A key ID for a WIT authority key: the JWT-style SPKI digest with a `wit-` prefix, so it can never equal a
    /// JWT authority's (the standard wants every `kid` in a bundle unique).
    public static func keyID(for publicKey: PublicKey) -> String {
        "wit-" + JWTSVIDSigner.keyID(for: publicKey)
    }

    /// The entry to publish in the trust bundle.
    public var bundleAuthority: SPIFFEBundle.JWTAuthority {
        get throws(CryptoError) { SPIFFEBundle.JWTAuthority(keyID: keyID, key: try privateKey.publicKey.jwk) }
    }

    /// Signs a WIT-SVID binding `workloadKey` to `spiffeID`.
    public func sign(
        spiffeID: SPIFFEID,
        workloadKey: PublicKey,
        expiresAt: Date,
        issuedAt: Date
    ) throws(CryptoError) -> WITSVID {
        guard expiresAt > issuedAt else { throw CryptoError(.issuanceRefused, "expiry must be after issuance") }
        let confirmationAlgorithm = JWTAlgorithm.preferred(for: workloadKey.algorithm)
        let jwk = try workloadKey.jwk
        var confirmation: [String: JSONValue] = [
            "kty": .string(jwk.keyType), "alg": .string(confirmationAlgorithm.rawValue),
        ]
        for (name, value) in [("crv", jwk.curve), ("x", jwk.x), ("y", jwk.y), ("n", jwk.modulus), ("e", jwk.exponent)] {
            if let value { confirmation[name] = .string(value) }
        }
        var random = [UInt8](repeating: 0, count: 16)
        for index in random.indices { random[index] = UInt8.random(in: 0...255) }
        let claims: [String: JSONValue] = [
            "sub": .string(spiffeID.description),
            "exp": .number(expiresAt.timeIntervalSince1970.rounded(.down)),
            "iat": .number(issuedAt.timeIntervalSince1970.rounded(.down)),
            "jti": .string(Data(random).base64URLEncodedString()),
            "cnf": .object(["jwk": .object(confirmation)]),
        ]
        let header: [String: JSONValue] = [
            "alg": .string(algorithm.rawValue), "kid": .string(keyID), "typ": .string(Self.tokenType),
        ]
        return WITSVID(
            token: try CompactJWS.sign(header: header, claims: claims, key: privateKey, algorithm: algorithm),
            spiffeID: spiffeID,
            expiresAt: Date(timeIntervalSince1970: expiresAt.timeIntervalSince1970.rounded(.down)),
            issuedAt: Date(timeIntervalSince1970: issuedAt.timeIntervalSince1970.rounded(.down)),
            keyID: keyID,
            confirmationKey: jwk,
            confirmationAlgorithm: confirmationAlgorithm,
            claims: claims
        )
    }
}
