internal import COpenSSL
public import Foundation
public import SPIFFE

/// An X.509 certificate parsed by OpenSSL, with the fields SPIFFE cares about read out.
public struct Certificate: Hashable, Sendable, CustomStringConvertible {
    let storage: OpenSSLObject
    public let derEncoded: Data

    var pointer: OpaquePointer { storage.pointer }

    init(taking pointer: OpaquePointer) throws(CryptoError) {
        self.storage = OpenSSLObject(pointer) { X509_free($0) }
        self.derEncoded = try OpenSSL.der("cannot encode the certificate") { i2d_X509(pointer, $0) }
        // Computing the extension cache rejects malformed extensions up front.
        _ = X509_get_key_usage(pointer)
        guard X509_get_extension_flags(pointer) & UInt32(EXFLAG_INVALID) == 0 else {
            throw CryptoError(.invalidCertificate, "certificate has malformed or duplicate extensions")
        }
    }

    /// Reads one DER certificate; trailing bytes are an error.
    public init(derEncoded der: Data) throws(CryptoError) {
        guard let x509 = OpenSSL.decodeDER(der, free: { X509_free($0) }, { d2i_X509(nil, $0, $1) }) else {
            throw OpenSSL.error(.invalidCertificate, "not a DER certificate (\(der.count) bytes)")
        }
        try self.init(taking: x509)
    }

    /// Reads one PEM certificate.
    public init(pemEncoded pem: String) throws(CryptoError) {
        let chain = try Self.chain(pemEncoded: pem)
        guard chain.count == 1, let certificate = chain.first else {
            throw CryptoError(.invalidPEM, "expected one certificate, found \(chain.count)")
        }
        self = certificate
    }

    /// Reads DER certificates laid end to end, as the Workload API carries chains and bundles.
    public static func chain(derConcatenated data: Data) throws(CryptoError) -> [Certificate] {
        var certificates: [Certificate] = []
        var rest = data[...]
        while !rest.isEmpty {
            guard let (x509, consumed) = OpenSSL.decodeDERPrefix(Data(rest), { d2i_X509(nil, $0, $1) }) else {
                throw OpenSSL.error(
                    .invalidCertificate,
                    "certificate \(certificates.count) in the DER chain is malformed (at byte \(data.count - rest.count))"
                )
            }
            certificates.append(try Certificate(taking: x509))
            rest = rest.dropFirst(consumed)
        }
        return certificates
    }

    /// Reads every `CERTIFICATE` block of a PEM file; other blocks are an error, and so is a file with none.
    public static func chain(pemEncoded pem: String) throws(CryptoError) -> [Certificate] {
        let blocks = try PEM.blocks(in: pem)
        guard !blocks.isEmpty else { throw CryptoError(.invalidPEM, "no PEM certificate found") }
        var certificates: [Certificate] = []
        for (index, block) in blocks.enumerated() {
            guard block.label == "CERTIFICATE" else {
                throw CryptoError(.invalidPEM, "PEM block \(index) is \"\(block.label)\", expected CERTIFICATE")
            }
            do {
                certificates.append(try Certificate(derEncoded: block.der))
            } catch {
                throw CryptoError(
                    error.code,
                    "PEM block \(index): \(error.message)",
                    openSSLErrors: error.openSSLErrors
                )
            }
        }
        return certificates
    }

    public var pemEncoded: String { PEM.encode(label: "CERTIFICATE", der: derEncoded) }

    /// The serial number's big-endian bytes.
    public var serialNumber: Data {
        guard let serial = X509_get0_serialNumber(pointer), let bignum = ASN1_INTEGER_to_BN(serial, nil) else {
            return Data()
        }
        defer { BN_free(bignum) }
        return OpenSSL.bytes(of: bignum)
    }

    /// The serial number in lowercase hex, as logs and SPIRE's agent records show it.
    public var serialNumberHex: String { serialNumber.map { String(format: "%02x", $0) }.joined() }

    public var notBefore: Date { OpenSSL.date(of: X509_get0_notBefore(pointer)) ?? .distantFuture }
    public var notAfter: Date { OpenSSL.date(of: X509_get0_notAfter(pointer)) ?? .distantPast }

    /// The subject in OpenSSL's one-line form, e.g. `/C=US/O=Lanyard`; empty for an empty subject.
    public var subject: String { Self.oneLine(X509_get_subject_name(pointer)) }
    public var issuer: String { Self.oneLine(X509_get_issuer_name(pointer)) }
    public var hasEmptySubject: Bool { X509_NAME_entry_count(X509_get_subject_name(pointer)) == 0 }

    private var subjectAlternativeNames: GeneralNames.Names {
        GeneralNames.read(consuming: X509_get_ext_d2i(pointer, NID_subject_alt_name, nil, nil))
    }

    public var uriSANs: [String] { subjectAlternativeNames.uris }
    public var dnsNames: [String] { subjectAlternativeNames.dnsNames }

    /// The SPIFFE ID in the single URI SAN; nil when there is not exactly one URI SAN or it is not a SPIFFE ID.
    public var spiffeID: SPIFFEID? {
        let uris = uriSANs
        guard uris.count == 1 else { return nil }
        return try? SPIFFEID(uris[0])
    }

    public var isSubjectAltNameCritical: Bool { isCritical(NID_subject_alt_name) }

    /// The key usage extension, or nil when the certificate has none.
    public var keyUsage: KeyUsage? {
        guard X509_get_extension_flags(pointer) & UInt32(EXFLAG_KUSAGE) != 0 else { return nil }
        return KeyUsage(rawValue: X509_get_key_usage(pointer) & 0xFF)
    }

    public var isKeyUsageCritical: Bool { isCritical(NID_key_usage) }

    /// serverAuth/clientAuth from the extended key usage extension, or nil when it is absent.
    public var extendedKeyUsage: ExtendedKeyUsage? {
        guard X509_get_extension_flags(pointer) & UInt32(EXFLAG_XKUSAGE) != 0 else { return nil }
        let bits = X509_get_extended_key_usage(pointer)
        var usage: ExtendedKeyUsage = []
        if bits & UInt32(XKU_SSL_SERVER) != 0 { usage.insert(.serverAuth) }
        if bits & UInt32(XKU_SSL_CLIENT) != 0 { usage.insert(.clientAuth) }
        return usage
    }

    /// Basic constraints `cA=true`.
    public var isCA: Bool { X509_get_extension_flags(pointer) & UInt32(EXFLAG_CA) != 0 }

    /// The path length constraint of a CA, if it sets one.
    public var pathLengthConstraint: Int? {
        let length = X509_get_pathlen(pointer)
        return length >= 0 ? length : nil
    }

    /// Whether `privateKey` is the key of this certificate, compared inside OpenSSL (no encoding round trips,
    /// which cost more than the signature when minting thousands of SVIDs).
    public func matches(_ privateKey: PrivateKey) -> Bool {
        defer { _ = OpenSSL.drainErrors() }
        return X509_check_private_key(pointer, privateKey.pointer) == 1
    }

    public var publicKey: PublicKey {
        get throws(CryptoError) {
            guard let key = X509_get_pubkey(pointer) else {
                throw OpenSSL.error(.invalidCertificate, "certificate has no readable public key")
            }
            return try PublicKey(taking: key)
        }
    }

    /// Whether `issuer`'s key signed this certificate and its names link up.
    public func isIssued(by issuer: Certificate) -> Bool {
        X509_check_issued(issuer.pointer, pointer) == X509_V_OK
    }

    public var description: String {
        "Certificate(subject: \(subject), uris: \(uriSANs), serial: \(serialNumberHex), notAfter: \(notAfter))"
    }

    public static func == (lhs: Certificate, rhs: Certificate) -> Bool { lhs.derEncoded == rhs.derEncoded }

    public func hash(into hasher: inout Hasher) { hasher.combine(derEncoded) }

    private func isCritical(_ nid: Int32) -> Bool {
        let index = X509_get_ext_by_NID(pointer, nid, -1)
        guard index >= 0, let extensionPointer = X509_get_ext(pointer, index) else { return false }
        return X509_EXTENSION_get_critical(extensionPointer) == 1
    }

    private static func oneLine(_ name: OpaquePointer?) -> String {
        guard let name, let line = X509_NAME_oneline(name, nil, 0) else { return "" }
        defer { lanyard_OPENSSL_free(line) }
        return String(cString: line)
    }
}
