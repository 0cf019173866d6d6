public import SPIFFE
internal import COpenSSL
public import Foundation

/// Everything that goes into a certificate before it is signed.
///
/// ``CertificateAuthority`` fills it for CA and SVID certificates; tests fill it by hand to build certificates
/// that break one rule at a time.
public struct CertificateTemplate: Sendable {
    /// Subject attributes in order, e.g. `[("C", "US"), ("O", "Lanyard")]`; empty for an empty subject.
    public var subject: [(attribute: String, value: String)]
    /// Big-endian serial; nil draws a random positive 128-bit serial.
    public var serialNumber: Data?
    public var notBefore: Date
    public var notAfter: Date
    /// nil leaves out basic constraints altogether.
    public var isCA: Bool?
    public var pathLengthConstraint: Int?
    /// nil leaves out key usage.
    public var keyUsage: KeyUsage?
    public var isKeyUsageCritical: Bool
    /// nil leaves out extended key usage.
    public var extendedKeyUsage: ExtendedKeyUsage?
    public var uris: [String]
    public var dnsNames: [String]
    public var isSubjectAltNameCritical: Bool

    public init(
        subject: [(attribute: String, value: String)] = [],
        serialNumber: Data? = nil,
        notBefore: Date,
        notAfter: Date,
        isCA: Bool? = false,
        pathLengthConstraint: Int? = nil,
        keyUsage: KeyUsage? = nil,
        isKeyUsageCritical: Bool = true,
        extendedKeyUsage: ExtendedKeyUsage? = nil,
        uris: [String] = [],
        dnsNames: [String] = [],
        isSubjectAltNameCritical: Bool = false
    ) {
        self.subject = subject
        self.serialNumber = serialNumber
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.isCA = isCA
        self.pathLengthConstraint = pathLengthConstraint
        self.keyUsage = keyUsage
        self.isKeyUsageCritical = isKeyUsageCritical
        self.extendedKeyUsage = extendedKeyUsage
        self.uris = uris
        self.dnsNames = dnsNames
        self.isSubjectAltNameCritical = isSubjectAltNameCritical
    }

    /// A random positive 128-bit serial, as the CA/B forum and SPIRE use.
    static func randomSerial() throws(CryptoError) -> Data {
        var bytes = [UInt8](repeating: 0, count: 16)
        try OpenSSL.check(RAND_bytes(&bytes, Int32(bytes.count)), "cannot draw a random serial number")
        bytes[0] &= 0x7F
        bytes[0] |= 0x01 << 6  // keep all 128 bits significant so the DER length is stable
        return Data(bytes)
    }

    /// Signs the template over `subjectKey` with `issuerKey`. `issuer` nil makes the certificate self-issued.
    public func sign(
        subjectKey: PublicKey,
        issuer: Certificate?,
        issuerKey: PrivateKey
    ) throws(CryptoError) -> Certificate {
        guard let x509 = X509_new() else { throw OpenSSL.error(.openSSLFailure, "cannot allocate a certificate") }
        do throws(CryptoError) {
            try fill(x509, subjectKey: subjectKey, issuer: issuer)
            guard X509_sign(x509, issuerKey.pointer, OpenSSL.digest(for: issuerKey.algorithm)) > 0 else {
                throw OpenSSL.error(.openSSLFailure, "cannot sign the certificate")
            }
        } catch {
            X509_free(x509)
            throw error
        }
        return try Certificate(taking: x509)
    }

    private func fill(_ x509: OpaquePointer, subjectKey: PublicKey, issuer: Certificate?) throws(CryptoError) {
        try OpenSSL.check(X509_set_version(x509, 2), "cannot set the certificate version")
        let serial: Data
        if let serialNumber { serial = serialNumber } else { serial = try Self.randomSerial() }
        guard let bignum = OpenSSL.bignum(serial) else {
            throw OpenSSL.error(.openSSLFailure, "cannot read the serial")
        }
        defer { BN_free(bignum) }
        guard let integer = BN_to_ASN1_INTEGER(bignum, nil) else {
            throw OpenSSL.error(.openSSLFailure, "cannot encode the serial")
        }
        defer { ASN1_INTEGER_free(integer) }
        try OpenSSL.check(X509_set_serialNumber(x509, integer), "cannot set the serial")
        guard ASN1_TIME_set(X509_getm_notBefore(x509), time_t(notBefore.timeIntervalSince1970)) != nil,
            ASN1_TIME_set(X509_getm_notAfter(x509), time_t(notAfter.timeIntervalSince1970)) != nil
        else { throw OpenSSL.error(.openSSLFailure, "cannot set the validity period") }
        try OpenSSL.check(X509_set_pubkey(x509, subjectKey.pointer), "cannot set the public key")

        guard let name = X509_NAME_new() else { throw OpenSSL.error(.openSSLFailure, "cannot allocate a name") }
        defer { X509_NAME_free(name) }
        for (attribute, value) in subject {
            let bytes = Array(value.utf8)
            try OpenSSL.check(
                X509_NAME_add_entry_by_txt(name, attribute, lanyard_MBSTRING_UTF8(), bytes, Int32(bytes.count), -1, 0),
                "cannot add subject attribute \(attribute)"
            )
        }
        try OpenSSL.check(X509_set_subject_name(x509, name), "cannot set the subject")
        let issuerName = issuer.map { X509_get_subject_name($0.pointer) } ?? X509_get_subject_name(x509)
        try OpenSSL.check(X509_set_issuer_name(x509, issuerName), "cannot set the issuer")

        var context = X509V3_CTX()
        lanyard_X509V3_set_ctx_nodb(&context)
        X509V3_set_ctx(&context, issuer?.pointer ?? x509, x509, nil, nil, 0)
        if let isCA {
            var value = isCA ? "critical,CA:TRUE" : "critical,CA:FALSE"
            if isCA, let pathLengthConstraint { value += ",pathlen:\(pathLengthConstraint)" }
            try add(NID_basic_constraints, value, to: x509, context: &context)
        }
        if let keyUsage {
            guard !keyUsage.isEmpty else { throw CryptoError(.issuanceRefused, "key usage cannot be empty") }
            try add(
                NID_key_usage,
                (isKeyUsageCritical ? "critical," : "") + keyUsage.description,
                to: x509,
                context: &context
            )
        }
        if let extendedKeyUsage, !extendedKeyUsage.isEmpty {
            try add(NID_ext_key_usage, extendedKeyUsage.description, to: x509, context: &context)
        }
        try add(NID_subject_key_identifier, "hash", to: x509, context: &context)
        if issuer != nil {
            try add(NID_authority_key_identifier, "keyid:always", to: x509, context: &context)
        }
        if !uris.isEmpty || !dnsNames.isEmpty {
            let names = try GeneralNames.make(uris: uris, dnsNames: dnsNames)
            defer { GENERAL_NAMES_free(names) }
            try OpenSSL.check(
                X509_add1_ext_i2d(
                    x509,
                    NID_subject_alt_name,
                    UnsafeMutableRawPointer(names),
                    isSubjectAltNameCritical ? 1 : 0,
                    UInt(X509V3_ADD_DEFAULT)
                ),
                "cannot add subject alternative names"
            )
        }
    }

    /// Adds an extension from a fixed configuration string (never from caller-controlled text).
    private func add(
        _ nid: Int32,
        _ value: String,
        to x509: OpaquePointer,
        context: inout X509V3_CTX
    ) throws(CryptoError) {
        guard let extensionPointer = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
            throw OpenSSL.error(.openSSLFailure, "cannot build extension \(value)")
        }
        defer { X509_EXTENSION_free(extensionPointer) }
        try OpenSSL.check(X509_add_ext(x509, extensionPointer, -1), "cannot add extension \(value)")
    }
}
