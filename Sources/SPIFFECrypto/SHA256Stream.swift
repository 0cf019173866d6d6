internal import COpenSSL

/// SHA-256 over data that arrives in pieces, so a large file is hashed in constant memory.
public final class SHA256Stream {
    private let context: OpaquePointer

    public init() {
        // Allocation and initialisation of a built-in digest fail only when memory runs out, which would abort anyway.
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Adds `bytes` to the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// The digest of everything added; the stream cannot be used afterwards.
    public func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }
}
