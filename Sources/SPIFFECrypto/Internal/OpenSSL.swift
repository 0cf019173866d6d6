internal import COpenSSL
import Foundation

/// The pointer-level helpers every OpenSSL call in this module goes through. Nothing here is visible outside.
enum OpenSSL {
    /// Empties OpenSSL's thread-local error queue into readable strings.
    static func drainErrors() -> [String] {
        var errors: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            errors.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return errors
    }

    /// An error carrying the OpenSSL error queue.
    static func error(_ code: CryptoErrorCode, _ message: String) -> CryptoError {
        CryptoError(code, message, openSSLErrors: drainErrors())
    }

    /// Fails with `message` unless an OpenSSL call returned 1.
    static func check(_ result: Int32, _ message: @autoclosure () -> String) throws(CryptoError) {
        guard result == 1 else { throw error(.openSSLFailure, message()) }
    }

    /// Runs an `i2d_*` encoder twice, the standard OpenSSL way: once for the length, once to write.
    static func der(
        _ message: @autoclosure () -> String,
        _ encode: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32
    ) throws(CryptoError) -> Data {
        let length = encode(nil)
        guard length > 0 else { throw error(.openSSLFailure, message()) }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        let written = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return encode(&cursor)
        }
        guard written == length else { throw error(.openSSLFailure, message()) }
        return Data(bytes)
    }

    /// Runs a `d2i_*` decoder over the whole of `data`; trailing bytes are an error (the object is freed).
    static func decodeDER(
        _ data: Data,
        free: (OpaquePointer) -> Void,
        _ decode: (UnsafeMutablePointer<UnsafePointer<UInt8>?>, Int) -> OpaquePointer?
    ) -> OpaquePointer? {
        guard let (object, consumed) = decodeDERPrefix(data, decode) else { return nil }
        guard consumed == data.count else {
            free(object)
            return nil
        }
        return object
    }

    /// Runs a `d2i_*` decoder at the start of `data` and says how many bytes it consumed.
    static func decodeDERPrefix(
        _ data: Data,
        _ decode: (UnsafeMutablePointer<UnsafePointer<UInt8>?>, Int) -> OpaquePointer?
    ) -> (OpaquePointer, Int)? {
        guard !data.isEmpty else { return nil }
        return data.withUnsafeBytes { raw -> (OpaquePointer, Int)? in
            guard let start = raw.bindMemory(to: UInt8.self).baseAddress else { return nil }
            var cursor: UnsafePointer<UInt8>? = start
            guard let object = decode(&cursor, raw.count), let end = cursor else { return nil }
            return (object, end - start)
        }
    }

    /// Reads every byte a memory BIO holds.
    static func contents(of bio: OpaquePointer) -> Data {
        var pointer: UnsafeMutablePointer<CChar>? = nil
        let length = lanyard_BIO_get_mem_data(bio, &pointer)
        guard length > 0, let pointer else { return Data() }
        return Data(bytes: pointer, count: length)
    }

    /// Writes through `body` into a fresh memory BIO and returns what it wrote.
    static func writingToMemory(
        _ message: @autoclosure () -> String,
        _ body: (OpaquePointer) -> Int32
    )
        throws(CryptoError) -> Data
    {
        guard let bio = BIO_new(BIO_s_mem()) else { throw error(.openSSLFailure, message()) }
        defer { BIO_free(bio) }
        guard body(bio) > 0 else { throw error(.openSSLFailure, message()) }
        return contents(of: bio)
    }

    /// Big-endian bytes of a BIGNUM, left-padded to `width` when given.
    static func bytes(of bignum: OpaquePointer, width: Int? = nil) -> Data {
        let count = width ?? Int(lanyard_BN_num_bytes(bignum))
        var bytes = [UInt8](repeating: 0, count: count)
        _ = BN_bn2binpad(bignum, &bytes, Int32(count))
        return Data(bytes)
    }

    /// A BIGNUM holding `data` (big-endian); the caller frees it.
    static func bignum(_ data: Data) -> OpaquePointer? {
        data.withUnsafeBytes { raw in
            BN_bin2bn(raw.bindMemory(to: UInt8.self).baseAddress, Int32(raw.count), nil)
        }
    }

    /// The message digest that goes with a key: SHA-384 for P-384, SHA-512 for P-521, SHA-256 otherwise.
    static func digest(for algorithm: KeyAlgorithm) -> OpaquePointer? {
        switch algorithm {
        case .ec(.p384): EVP_sha384()
        case .ec(.p521): EVP_sha512()
        default: EVP_sha256()
        }
    }

    /// Seconds since 1970 of an ASN1_TIME.
    static func date(of time: UnsafePointer<ASN1_TIME>?) -> Date? {
        guard let time else { return nil }
        var components = tm()
        guard ASN1_TIME_to_tm(time, &components) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&components)))
    }
}

/// Owns one OpenSSL object and frees it exactly once; immutable after creation, so it may be shared.
final class OpenSSLObject: @unchecked Sendable {
    let pointer: OpaquePointer
    private let free: @Sendable (OpaquePointer) -> Void

    init(_ pointer: OpaquePointer, free: @escaping @Sendable (OpaquePointer) -> Void) {
        self.pointer = pointer
        self.free = free
    }

    deinit { free(pointer) }
}
