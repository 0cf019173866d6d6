internal import COpenSSL
public import Foundation
public import SPIFFE

/// A private key held by OpenSSL. Its bytes leave only through ``pkcs8DER`` and ``pemEncoded``, for writing to a
/// 0600 file or into a Workload API response; its description never shows them.
public struct PrivateKey: Sendable, CustomStringConvertible {
    let storage: OpenSSLObject
    public let algorithm: KeyAlgorithm

    var pointer: OpaquePointer { storage.pointer }

    init(taking pointer: OpaquePointer) throws(CryptoError) {
        let storage = OpenSSLObject(pointer) { EVP_PKEY_free($0) }
        self.algorithm = try KeyInspection.algorithm(of: pointer)
        self.storage = storage
    }

    /// Generates a fresh key of `type`.
    public init(generating type: KeyType) throws(CryptoError) {
        let context: OpaquePointer?
        switch type.algorithm {
        case .ec: context = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil)
        case .rsa: context = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nil)
        }
        guard let context else { throw OpenSSL.error(.openSSLFailure, "cannot create a key generation context") }
        defer { EVP_PKEY_CTX_free(context) }
        try OpenSSL.check(EVP_PKEY_keygen_init(context), "cannot start key generation")
        switch type.algorithm {
        case .ec(let curve):
            try OpenSSL.check(
                EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, OBJ_sn2nid(curve.groupName)),
                "cannot select curve \(curve.rawValue)"
            )
        case .rsa(let bits):
            try OpenSSL.check(EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(bits)), "cannot set rsa key size")
        }
        var key: OpaquePointer? = nil
        try OpenSSL.check(EVP_PKEY_keygen(context, &key), "key generation failed")
        guard let key else { throw OpenSSL.error(.openSSLFailure, "key generation returned no key") }
        try self.init(taking: key)
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo` in DER.
    public init(pkcs8DER der: Data) throws(CryptoError) {
        // EC keys (what the agent makes) are read without OpenSSL 3's slow decoder framework; anything else, and
        // anything that path does not take, goes through the general decoder.
        let fast = der.withUnsafeBytes { raw -> OpaquePointer? in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return nil }
            return lanyard_pkcs8_ec_private_key(base, raw.count)
        }
        if let fast {
            try self.init(taking: fast)
            return
        }
        guard
            let info = OpenSSL.decodeDER(
                der,
                free: { PKCS8_PRIV_KEY_INFO_free($0) },
                { d2i_PKCS8_PRIV_KEY_INFO(nil, $0, $1) }
            )
        else { throw OpenSSL.error(.invalidKey, "private key is not valid PKCS#8 DER") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        guard let key = EVP_PKCS82PKEY(info) else {
            throw OpenSSL.error(.invalidKey, "PKCS#8 structure does not hold a usable private key")
        }
        try self.init(taking: key)
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) or the traditional `EC PRIVATE KEY` / `RSA PRIVATE KEY`.
    /// Encrypted keys are refused rather than prompting for a password.
    public init(pemEncoded pem: String) throws(CryptoError) {
        let blocks = try PEM.blocks(in: pem)
        let keys = blocks.filter { $0.label.hasSuffix("PRIVATE KEY") }
        guard keys.count == 1, let block = keys.first else {
            throw CryptoError(.invalidPEM, "expected exactly one PEM private key block, found \(keys.count)")
        }
        switch block.label {
        case "PRIVATE KEY":
            try self.init(pkcs8DER: block.der)
        case "EC PRIVATE KEY", "RSA PRIVATE KEY":
            let type = block.label == "EC PRIVATE KEY" ? EVP_PKEY_EC : EVP_PKEY_RSA
            guard
                let key = OpenSSL.decodeDER(
                    block.der,
                    free: { EVP_PKEY_free($0) },
                    { d2i_PrivateKey(type, nil, $0, $1) }
                )
            else { throw OpenSSL.error(.invalidKey, "\(block.label) block is not a valid key") }
            try self.init(taking: key)
        case "ENCRYPTED PRIVATE KEY":
            throw CryptoError(
                .unsupportedKey,
                "encrypted private keys are not supported; store the key unencrypted with mode 0600"
            )
        default:
            throw CryptoError(.invalidPEM, "unexpected PEM block \"\(block.label)\"")
        }
    }

    /// Unencrypted PKCS#8 DER: the form of `x509_svid_key` in the Workload API.
    public var pkcs8DER: Data {
        get throws(CryptoError) {
            guard let info = EVP_PKEY2PKCS8(pointer) else {
                throw OpenSSL.error(.openSSLFailure, "cannot convert the private key to PKCS#8")
            }
            defer { PKCS8_PRIV_KEY_INFO_free(info) }
            return try OpenSSL.der("cannot encode the private key") { i2d_PKCS8_PRIV_KEY_INFO(info, $0) }
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    public var pemEncoded: String {
        get throws(CryptoError) { PEM.encode(label: "PRIVATE KEY", der: try pkcs8DER) }
    }

    /// The matching public key.
    public var publicKey: PublicKey {
        get throws(CryptoError) {
            let spki = try OpenSSL.der("cannot encode the public key") { i2d_PUBKEY(pointer, $0) }
            return try PublicKey(spkiDER: spki)
        }
    }

    /// The key as a private JWK (RFC 7517/7518: `kty`, `crv`, `x`, `y`, `d`, and `alg`), the form the Workload API's
    /// WIT-SVID profile hands out. EC keys only: Lanyard makes every workload WIT key on P-256.
    public var privateJWKData: Data {
        get throws(CryptoError) {
            guard case .ec(let curve) = algorithm else {
                throw CryptoError(.unsupportedKey, "only EC private keys are written as JWKs")
            }
            let publicJWK = try publicKey.jwk
            let d = try KeyInspection.bignumParameter(
                OSSL_PKEY_PARAM_PRIV_KEY,
                of: pointer,
                width: curve.coordinateSize
            )
            let members: [String: String] = [
                "kty": "EC", "crv": curve.rawValue, "x": publicJWK.x ?? "", "y": publicJWK.y ?? "",
                "d": d.base64URLEncodedString(), "alg": JWTAlgorithm.preferred(for: algorithm).rawValue,
            ]
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(members)) ?? Data()
        }
    }

    public var description: String { "PrivateKey(\(algorithm))" }
}
