internal import COpenSSL
public import Foundation
public import SPIFFE

/// A public key: an SVID's subject key, a CA's key, or a JWT authority from a bundle.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    let storage: OpenSSLObject
    public let algorithm: KeyAlgorithm
    /// DER `SubjectPublicKeyInfo`: the identity of the key, used for equality.
    public let spkiDER: Data

    var pointer: OpaquePointer { storage.pointer }

    init(taking pointer: OpaquePointer) throws(CryptoError) {
        let storage = OpenSSLObject(pointer) { EVP_PKEY_free($0) }
        self.algorithm = try KeyInspection.algorithm(of: pointer)
        self.spkiDER = try OpenSSL.der("cannot encode the public key") { i2d_PUBKEY(pointer, $0) }
        self.storage = storage
    }

    /// Reads a DER `SubjectPublicKeyInfo`.
    public init(spkiDER der: Data) throws(CryptoError) {
        guard let key = OpenSSL.decodeDER(der, free: { EVP_PKEY_free($0) }, { d2i_PUBKEY(nil, $0, $1) }) else {
            throw OpenSSL.error(.invalidKey, "public key is not valid SubjectPublicKeyInfo DER")
        }
        try self.init(taking: key)
    }

    /// Builds the key a JWK describes (EC `crv`/`x`/`y`, RSA `n`/`e`), checking the point lies on the curve.
    public init(jwk: JSONWebKey) throws(CryptoError) {
        let key: OpaquePointer?
        switch jwk.keyType {
        case "EC":
            guard let curveName = jwk.curve, let curve = KeyAlgorithm.Curve(rawValue: curveName) else {
                throw CryptoError(.unsupportedKey, "JWK curve \(jwk.curve ?? "(none)") is not supported")
            }
            guard let x = jwk.x.flatMap({ Data(base64URLEncoded: $0) }),
                let y = jwk.y.flatMap({ Data(base64URLEncoded: $0) })
            else { throw CryptoError(.invalidKey, "EC JWK needs base64url \"x\" and \"y\"") }
            guard x.count == curve.coordinateSize, y.count == curve.coordinateSize else {
                throw CryptoError(
                    .invalidKey,
                    "EC JWK coordinates must be \(curve.coordinateSize) bytes for \(curve.rawValue)"
                )
            }
            let point = [UInt8]([0x04]) + x + y
            key = lanyard_EVP_PKEY_from_ec_public(curve.groupName, point, point.count)
        case "RSA":
            guard let modulus = jwk.modulus.flatMap({ Data(base64URLEncoded: $0) }),
                let exponent = jwk.exponent.flatMap({ Data(base64URLEncoded: $0) }),
                !modulus.isEmpty, !exponent.isEmpty
            else { throw CryptoError(.invalidKey, "RSA JWK needs base64url \"n\" and \"e\"") }
            let n = [UInt8](modulus)
            let e = [UInt8](exponent)
            key = lanyard_EVP_PKEY_from_rsa_public(n, n.count, e, e.count)
        default:
            throw CryptoError(.unsupportedKey, "JWK key type \"\(jwk.keyType)\" is not supported")
        }
        guard let key else {
            throw OpenSSL.error(.invalidKey, "JWK does not describe a valid \(jwk.keyType) public key")
        }
        guard let check = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else {
            EVP_PKEY_free(key)
            throw OpenSSL.error(.openSSLFailure, "cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(check) }
        guard EVP_PKEY_public_check(check) == 1 else {
            EVP_PKEY_free(key)
            throw OpenSSL.error(.invalidKey, "JWK does not describe a valid \(jwk.keyType) public key")
        }
        try self.init(taking: key)
    }

    /// The key as a JWK, without `use` or `kid`.
    public var jwk: JSONWebKey {
        get throws(CryptoError) {
            switch algorithm {
            case .ec(let curve):
                let x = try KeyInspection.bignumParameter(
                    OSSL_PKEY_PARAM_EC_PUB_X,
                    of: pointer,
                    width: curve.coordinateSize
                )
                let y = try KeyInspection.bignumParameter(
                    OSSL_PKEY_PARAM_EC_PUB_Y,
                    of: pointer,
                    width: curve.coordinateSize
                )
                return JSONWebKey(
                    keyType: "EC",
                    curve: curve.rawValue,
                    x: x.base64URLEncodedString(),
                    y: y.base64URLEncodedString()
                )
            case .rsa:
                let n = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_RSA_N, of: pointer)
                let e = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_RSA_E, of: pointer)
                return JSONWebKey(
                    keyType: "RSA",
                    modulus: n.base64URLEncodedString(),
                    exponent: e.base64URLEncodedString()
                )
            }
        }
    }

    /// PEM `PUBLIC KEY`.
    public var pemEncoded: String { PEM.encode(label: "PUBLIC KEY", der: spkiDER) }

    public var description: String { "PublicKey(\(algorithm))" }

    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.spkiDER == rhs.spkiDER }

    public func hash(into hasher: inout Hasher) { hasher.combine(spkiDER) }
}
