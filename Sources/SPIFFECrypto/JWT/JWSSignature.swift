internal import COpenSSL
import Foundation
import SPIFFE

/// Raw JWS signatures over OpenSSL's EVP_DigestSign/Verify. ECDSA signatures travel as fixed-width r‖s
/// (RFC 7518 §3.4), not DER, so they are converted both ways here.
enum JWSSignature {
    static func sign(_ data: Data, key: PrivateKey, algorithm: JWTAlgorithm) throws(CryptoError) -> Data {
        guard algorithm.fits(key.algorithm) else {
            throw CryptoError(.unsupportedKey, "\(algorithm.rawValue) cannot be made with a \(key.algorithm) key")
        }
        guard let context = EVP_MD_CTX_new() else { throw OpenSSL.error(.openSSLFailure, "cannot allocate a digest") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer? = nil
        try OpenSSL.check(
            EVP_DigestSignInit(context, &keyContext, algorithm.digest, nil, key.pointer),
            "cannot start signing"
        )
        if algorithm.usesPSS, let keyContext { try usePSS(keyContext) }
        var length = 0
        let bytes = [UInt8](data)
        try OpenSSL.check(EVP_DigestSign(context, nil, &length, bytes, bytes.count), "cannot size the signature")
        var signature = [UInt8](repeating: 0, count: length)
        try OpenSSL.check(EVP_DigestSign(context, &signature, &length, bytes, bytes.count), "signing failed")
        signature.removeLast(signature.count - length)
        guard case .ec(let curve) = key.algorithm else { return Data(signature) }
        return try rawECDSA(fromDER: Data(signature), coordinateSize: curve.coordinateSize)
    }

    static func verify(_ signature: Data, over data: Data, key: PublicKey, algorithm: JWTAlgorithm) -> Bool {
        guard algorithm.fits(key.algorithm) else { return false }
        var signature = signature
        if case .ec(let curve) = key.algorithm {
            guard let der = derECDSA(fromRaw: signature, coordinateSize: curve.coordinateSize) else { return false }
            signature = der
        }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer {
            EVP_MD_CTX_free(context)
            _ = OpenSSL.drainErrors()
        }
        var keyContext: OpaquePointer? = nil
        guard EVP_DigestVerifyInit(context, &keyContext, algorithm.digest, nil, key.pointer) == 1 else { return false }
        if algorithm.usesPSS, let keyContext {
            guard (try? usePSS(keyContext)) != nil else { return false }
        }
        return signature.withUnsafeBytes { signatureBytes in
            data.withUnsafeBytes { dataBytes in
                EVP_DigestVerify(
                    context,
                    signatureBytes.bindMemory(to: UInt8.self).baseAddress,
                    signatureBytes.count,
                    dataBytes.bindMemory(to: UInt8.self).baseAddress,
                    dataBytes.count
                ) == 1
            }
        }
    }

    /// PSS with MGF1 over the same digest and a salt as long as the digest, as RFC 7518 §3.5 requires.
    private static func usePSS(_ keyContext: OpaquePointer) throws(CryptoError) {
        try OpenSSL.check(EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING), "cannot select PSS")
        try OpenSSL.check(
            EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST),
            "cannot set the PSS salt"
        )
    }

    static func rawECDSA(fromDER der: Data, coordinateSize: Int) throws(CryptoError) -> Data {
        guard let signature = OpenSSL.decodeDER(der, free: { ECDSA_SIG_free($0) }, { d2i_ECDSA_SIG(nil, $0, $1) })
        else {
            throw OpenSSL.error(.openSSLFailure, "cannot read the ECDSA signature")
        }
        defer { ECDSA_SIG_free(signature) }
        guard let r = ECDSA_SIG_get0_r(signature), let s = ECDSA_SIG_get0_s(signature) else {
            throw OpenSSL.error(.openSSLFailure, "ECDSA signature has no r or s")
        }
        return OpenSSL.bytes(of: r, width: coordinateSize)
            + OpenSSL.bytes(of: s, width: coordinateSize)
    }

    static func derECDSA(fromRaw raw: Data, coordinateSize: Int) -> Data? {
        guard raw.count == 2 * coordinateSize,
            let r = OpenSSL.bignum(raw.prefix(coordinateSize)),
            let s = OpenSSL.bignum(raw.suffix(coordinateSize))
        else { return nil }
        guard let signature = ECDSA_SIG_new(), ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        defer { ECDSA_SIG_free(signature) }
        return try? OpenSSL.der("cannot encode the ECDSA signature") { i2d_ECDSA_SIG(signature, $0) }
    }
}
