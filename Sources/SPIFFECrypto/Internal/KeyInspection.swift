import SPIFFE
internal import COpenSSL
import Foundation

/// Reads what kind of key an `EVP_PKEY` is, and its public components.
enum KeyInspection {
    static func algorithm(of key: OpaquePointer) throws(CryptoError) -> KeyAlgorithm {
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1 else {
                throw OpenSSL.error(.invalidKey, "EC key has no named curve")
            }
            let groupName = String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let curve = KeyAlgorithm.Curve(groupName: groupName) else {
                throw CryptoError(.unsupportedKey, "EC curve \(groupName) is not supported (use P-256, P-384 or P-521)")
            }
            return .ec(curve)
        case EVP_PKEY_RSA:
            let bits = Int(EVP_PKEY_get_bits(key))
            guard bits >= KeyAlgorithm.minimumRSABits else {
                throw CryptoError(.unsupportedKey, "RSA keys of \(bits) bits are refused; the minimum is 2048")
            }
            return .rsa(bits: bits)
        default:
            throw CryptoError(.unsupportedKey, "only EC and RSA keys are supported")
        }
    }

    /// A big-number parameter such as `qx`, `n` or `e`.
    static func bignumParameter(_ name: String, of key: OpaquePointer, width: Int? = nil) throws(CryptoError) -> Data {
        var bignum: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(key, name, &bignum) == 1, let bignum else {
            throw OpenSSL.error(.invalidKey, "key has no \(name) parameter")
        }
        defer { BN_free(bignum) }
        return OpenSSL.bytes(of: bignum, width: width)
    }
}
