internal import COpenSSL
import Foundation

/// Subject-alternative-name lists (`GENERAL_NAMES`): built for CSRs and certificates, read back from both.
enum GeneralNames {
    /// URIs and DNS names held in a GENERAL_NAMES stack.
    struct Names {
        var uris: [String] = []
        var dnsNames: [String] = []
        var otherCount = 0
    }

    /// A new GENERAL_NAMES stack; the caller frees it with `GENERAL_NAMES_free`.
    static func make(uris: [String], dnsNames: [String]) throws(CryptoError) -> OpaquePointer {
        guard let names = lanyard_sk_GENERAL_NAME_new_null() else {
            throw OpenSSL.error(.openSSLFailure, "cannot allocate subject alternative names")
        }
        do {
            for uri in uris { try append(uri, type: GEN_URI, to: names) }
            for dnsName in dnsNames { try append(dnsName, type: GEN_DNS, to: names) }
        } catch {
            GENERAL_NAMES_free(names)
            throw error
        }
        return names
    }

    private static func append(_ value: String, type: Int32, to names: OpaquePointer) throws(CryptoError) {
        guard let name = GENERAL_NAME_new(), let string = ASN1_IA5STRING_new() else {
            throw OpenSSL.error(.openSSLFailure, "cannot allocate a subject alternative name")
        }
        let bytes = Array(value.utf8)
        guard ASN1_STRING_set(string, bytes, Int32(bytes.count)) == 1 else {
            ASN1_IA5STRING_free(string)
            GENERAL_NAME_free(name)
            throw OpenSSL.error(.openSSLFailure, "cannot set a subject alternative name")
        }
        GENERAL_NAME_set0_value(name, type, UnsafeMutableRawPointer(string))
        guard lanyard_sk_GENERAL_NAME_push(names, name) > 0 else {
            GENERAL_NAME_free(name)
            throw OpenSSL.error(.openSSLFailure, "cannot add a subject alternative name")
        }
    }

    /// Reads a GENERAL_NAMES stack returned by a `*_d2i` call and frees it.
    static func read(consuming raw: UnsafeMutableRawPointer?) -> Names {
        var result = Names()
        guard let raw else { return result }
        let names = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(names) }
        for index in 0..<lanyard_sk_GENERAL_NAME_num(names) {
            guard let name = lanyard_sk_GENERAL_NAME_value(names, index) else { continue }
            var type: Int32 = 0
            let value = GENERAL_NAME_get0_value(name, &type)
            guard type == GEN_URI || type == GEN_DNS, let value else {
                result.otherCount += 1
                continue
            }
            let string = value.assumingMemoryBound(to: ASN1_STRING.self)
            let length = Int(ASN1_STRING_length(string))
            let text: String
            if let data = ASN1_STRING_get0_data(string), length > 0 {
                text = String(decoding: UnsafeBufferPointer(start: data, count: length), as: UTF8.self)
            } else {
                text = ""
            }
            if type == GEN_URI { result.uris.append(text) } else { result.dnsNames.append(text) }
        }
        return result
    }
}
