public import Foundation
public import SPIFFE

/// A signing authority for one trust domain: a root, or an intermediate under one, with its private key.
///
/// It issues X509-SVIDs from CSRs. An SVID never outlives the authority: its lifetime is cut at the
/// authority's own expiry, so a chain never holds a certificate that outlives its issuer.
public struct CertificateAuthority: Sendable {
    public let trustDomain: TrustDomain
    public let certificate: Certificate
    public let privateKey: PrivateKey
    /// What follows an SVID leaf in its chain: empty for a root, this certificate and its parents'
    /// (short of the root) for an intermediate.
    public let intermediates: [Certificate]

    /// SVIDs start this long before they are issued, so a peer whose clock runs a little behind accepts them.
    public static let backdate: TimeInterval = 10

    /// Wraps an existing CA certificate and key, checking they fit together and describe a SPIFFE CA.
    public init(certificate: Certificate, privateKey: PrivateKey, intermediates: [Certificate] = []) throws(CryptoError)
    {
        guard certificate.isCA, certificate.keyUsage?.contains(.keyCertSign) == true else {
            throw CryptoError(.invalidCertificate, "authority certificate must be a CA with keyCertSign")
        }
        guard let uri = certificate.uriSANs.first, let id = try? SPIFFEID(uri), id.path.isEmpty else {
            throw CryptoError(.invalidCertificate, "authority certificate must carry its trust domain ID spiffe://<td>")
        }
        guard try certificate.publicKey == privateKey.publicKey else {
            throw CryptoError(.invalidKey, "private key does not match the authority certificate")
        }
        self.trustDomain = id.trustDomain
        self.certificate = certificate
        self.privateKey = privateKey
        let selfIssued = certificate.isIssued(by: certificate)
        self.intermediates =
            selfIssued || intermediates.first == certificate ? intermediates : [certificate] + intermediates
    }

    /// Creates a self-signed root for `trustDomain`.
    public static func makeRoot(
        trustDomain: TrustDomain,
        keyType: KeyType,
        ttl: Duration,
        now: Date
    ) throws(CryptoError) -> CertificateAuthority {
        let key = try PrivateKey(generating: keyType)
        let template = caTemplate(trustDomain: trustDomain, notBefore: now - backdate, notAfter: now + ttl.timeInterval)
        let certificate = try template.sign(subjectKey: try key.publicKey, issuer: nil, issuerKey: key)
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Creates an intermediate CA signed by this one, living at most as long as this one.
    public func makeIntermediate(keyType: KeyType, ttl: Duration, now: Date) throws(CryptoError) -> CertificateAuthority
    {
        try checkValid(at: now)
        let key = try PrivateKey(generating: keyType)
        let template = Self.caTemplate(
            trustDomain: trustDomain,
            notBefore: max(now - Self.backdate, certificate.notBefore),
            notAfter: min(now + ttl.timeInterval, certificate.notAfter)
        )
        let signed = try template.sign(subjectKey: try key.publicKey, issuer: certificate, issuerKey: privateKey)
        return try CertificateAuthority(
            certificate: signed,
            privateKey: key,
            intermediates: isRoot ? [] : intermediates
        )
    }

    /// Whether the certificate signed itself.
    public var isRoot: Bool { certificate.isIssued(by: certificate) }

    /// Issues an X509-SVID for `spiffeID` from `csr`, returning the chain leaf first.
    ///
    /// The CSR must prove possession of its key and may ask for no other URI than `spiffeID`; the lifetime is
    /// `ttl`, cut at the authority's expiry.
    public func issueX509SVID(
        csr: CertificateSigningRequest,
        spiffeID: SPIFFEID,
        ttl: Duration,
        dnsNames: [String] = [],
        now: Date
    ) throws(CryptoError) -> [Certificate] {
        try checkValid(at: now)
        guard csr.hasValidSignature else {
            throw CryptoError(.issuanceRefused, "csr signature does not verify, so it proves no possession of its key")
        }
        guard spiffeID.trustDomain == trustDomain else {
            throw CryptoError(
                .issuanceRefused,
                "spiffe id \(spiffeID) is not in the authority's trust domain \(trustDomain)"
            )
        }
        guard !spiffeID.path.isEmpty else {
            throw CryptoError(.issuanceRefused, "an X509-SVID needs a spiffe id with a path, not \(spiffeID)")
        }
        let requested = csr.uriSANs
        guard requested.isEmpty || requested == [spiffeID.description] else {
            throw CryptoError(.issuanceRefused, "csr asks for \(requested) but the identity is \(spiffeID)")
        }
        guard ttl > .zero else { throw CryptoError(.issuanceRefused, "ttl must be positive") }
        for name in dnsNames where !Self.isValidDNSName(name) {
            throw CryptoError(.issuanceRefused, "\"\(name)\" is not a valid DNS name")
        }
        let template = CertificateTemplate(
            subject: [("C", "US"), ("O", "Lanyard")],
            notBefore: max(now - Self.backdate, certificate.notBefore),
            notAfter: min(now + ttl.timeInterval, certificate.notAfter),
            isCA: false,
            keyUsage: [.digitalSignature, .keyEncipherment, .keyAgreement],
            extendedKeyUsage: [.serverAuth, .clientAuth],
            uris: [spiffeID.description],
            dnsNames: dnsNames
        )
        let leaf = try template.sign(subjectKey: try csr.publicKey, issuer: certificate, issuerKey: privateKey)
        return [leaf] + intermediates
    }

    private func checkValid(at now: Date) throws(CryptoError) {
        guard certificate.notBefore <= now, now < certificate.notAfter else {
            throw CryptoError(
                .issuanceRefused,
                "the authority for \(trustDomain) is valid from \(certificate.notBefore) to \(certificate.notAfter), not at \(now)"
            )
        }
    }

    private static func caTemplate(trustDomain: TrustDomain, notBefore: Date, notAfter: Date) -> CertificateTemplate {
        CertificateTemplate(
            subject: [("C", "US"), ("O", "Lanyard"), ("CN", trustDomain.name)],
            notBefore: notBefore,
            notAfter: notAfter,
            isCA: true,
            keyUsage: [.keyCertSign, .cRLSign, .digitalSignature],
            uris: [trustDomain.idString]
        )
    }

    /// RFC 1123 host names, optionally with one leading `*.` label.
    static func isValidDNSName(_ name: String) -> Bool {
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" { labels.removeFirst() }
        guard !labels.isEmpty, name.utf8.count <= 253 else { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { byte in
                    switch byte {
                    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                        true
                    default:
                        false
                    }
                }
        }
    }
}
