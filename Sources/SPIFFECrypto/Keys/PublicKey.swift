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
        let builder = OSSL_PARAM_BLD_new()
        guard let builder else { throw OpenSSL.error(.openSSLFailure, "cannot allocate key parameters") }
        defer { OSSL_PARAM_BLD_free(builder) }
        var bignums: [OpaquePointer] = []
        defer { bignums.forEach { BN_free($0) } }
        let typeName: String
        switch jwk.keyType {
        case "EC":
            guard let curveName = jwk.curve, let curve = KeyAlgorithm.Curve(rawValue: curveName) else {
                throw CryptoError(.unsupportedKey, "JWK curve \(jwk.curve ?? "(none)") is not supported")
            }
            guard let x = jwk.x.flatMap({ Data(base64URLEncoded: $0) }),
                let y = jwk.y.flatMap({ Data(base64URLEncoded: $0) })
            else { throw CryptoError(.invalidKey, "EC JWK needs base64url \"x\" and \"y\"") }
            guard x.count == curve.coordinateSize, y.count == curve.coordinateSize else {
                throw CryptoError(.invalidKey, "EC JWK coordinates must be \(curve.coordinateSize) bytes for \(curve.rawValue)")
            }
            var point = Data([0x04])
            point.append(x)
            point.append(y)
            typeName = "EC"
            guard OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, curve.groupName, 0) == 1,
                point.withUnsafeBytes({
                    OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, $0.baseAddress, $0.count)
                }) == 1
            else { throw OpenSSL.error(.openSSLFailure, "cannot build EC key parameters") }
        case "RSA":
            guard let modulus = jwk.modulus.flatMap({ Data(base64URLEncoded: $0) }),
                let exponent = jwk.exponent.flatMap({ Data(base64URLEncoded: $0) }),
                !modulus.isEmpty, !exponent.isEmpty
            else { throw CryptoError(.invalidKey, "RSA JWK needs base64url \"n\" and \"e\"") }
            guard let n = OpenSSL.bignum(modulus), let e = OpenSSL.bignum(exponent) else {
                throw OpenSSL.error(.openSSLFailure, "cannot read RSA key numbers")
            }
            bignums += [n, e]
            typeName = "RSA"
            guard OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) == 1,
                OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) == 1
            else { throw OpenSSL.error(.openSSLFailure, "cannot build RSA key parameters") }
        default:
            throw CryptoError(.unsupportedKey, "JWK key type \"\(jwk.keyType)\" is not supported")
        }
        guard let parameters = OSSL_PARAM_BLD_to_param(builder) else {
            throw OpenSSL.error(.openSSLFailure, "cannot build key parameters")
        }
        defer { OSSL_PARAM_free(parameters) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, typeName, nil) else {
            throw OpenSSL.error(.openSSLFailure, "cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_fromdata_init(context) == 1,
            EVP_PKEY_fromdata(context, &key, lanyard_EVP_PKEY_PUBLIC_KEY(), parameters) == 1,
            let key
        else { throw OpenSSL.error(.invalidKey, "JWK does not describe a valid \(typeName) public key") }
        guard let check = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else {
            EVP_PKEY_free(key)
            throw OpenSSL.error(.openSSLFailure, "cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(check) }
        guard EVP_PKEY_public_check(check) == 1 else {
            EVP_PKEY_free(key)
            throw OpenSSL.error(.invalidKey, "JWK does not describe a valid \(typeName) public key")
        }
        try self.init(taking: key)
    }

    /// The key as a JWK, without `use` or `kid`.
    public var jwk: JSONWebKey {
        get throws(CryptoError) {
            switch algorithm {
            case .ec(let curve):
                let x = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_EC_PUB_X, of: pointer, width: curve.coordinateSize)
                let y = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_EC_PUB_Y, of: pointer, width: curve.coordinateSize)
                return JSONWebKey(
                    keyType: "EC",
                    curve: curve.rawValue,
                    x: x.base64URLEncodedString(),
                    y: y.base64URLEncodedString()
                )
            case .rsa:
                let n = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_RSA_N, of: pointer)
                let e = try KeyInspection.bignumParameter(OSSL_PKEY_PARAM_RSA_E, of: pointer)
                return JSONWebKey(keyType: "RSA", modulus: n.base64URLEncodedString(), exponent: e.base64URLEncodedString())
            }
        }
    }

    /// PEM `PUBLIC KEY`.
    public var pemEncoded: String { PEM.encode(label: "PUBLIC KEY", der: spkiDER) }

    public var description: String { "PublicKey(\(algorithm))" }

    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.spkiDER == rhs.spkiDER }

    public func hash(into hasher: inout Hasher) { hasher.combine(spkiDER) }
}
