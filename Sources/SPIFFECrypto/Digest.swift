internal import COpenSSL
public import Foundation

/// Message digests through OpenSSL.
public enum Digest {
    /// SHA-256 of `data`.
    public static func sha256(_ data: Data) -> Data {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let bytes = [UInt8](data)
        // EVP_Digest with a built-in digest fails only when memory runs out, which would abort anyway.
        _ = EVP_Digest(bytes, bytes.count, &output, &length, EVP_sha256(), nil)
        return Data(output.prefix(Int(length)))
    }

    /// SHA-1 of `data`, for naming certificates by fingerprint (as SPIRE's x509pop agent IDs do), never for security.
    public static func sha1(_ data: Data) -> Data {
        var output = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        let bytes = [UInt8](data)
        _ = EVP_Digest(bytes, bytes.count, &output, &length, EVP_sha1(), nil)
        return Data(output.prefix(Int(length)))
    }
}
