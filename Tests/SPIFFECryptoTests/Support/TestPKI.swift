import Foundation
import SPIFFE
import SPIFFECrypto

/// A root, an intermediate and leaf builders for one trust domain, made in code for each test.
struct TestPKI {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    let trustDomain: TrustDomain
    let root: CertificateAuthority
    let intermediate: CertificateAuthority

    init(trustDomain: String = "example.org", keyType: KeyType = .ecP256) throws {
        self.trustDomain = try TrustDomain(trustDomain)
        root = try CertificateAuthority.makeRoot(
            trustDomain: self.trustDomain,
            keyType: keyType,
            ttl: .seconds(86_400 * 30),
            now: Self.now
        )
        intermediate = try root.makeIntermediate(keyType: keyType, ttl: .seconds(86_400), now: Self.now)
    }

    var bundle: X509Bundle { X509Bundle(trustDomain: trustDomain, authorities: [root.certificate]) }

    /// A proper SVID leaf for `path` signed by the intermediate, with its key.
    func svid(path: String = "/workload", ttl: Duration = .seconds(3600)) throws -> X509SVID {
        let key = try PrivateKey(generating: .ecP256)
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: nil)
        let chain = try intermediate.issueX509SVID(
            csr: csr,
            spiffeID: try SPIFFEID(trustDomain: trustDomain, path: path),
            ttl: ttl,
            now: Self.now
        )
        return try X509SVID(certificates: chain, privateKey: key)
    }

    /// The template a good leaf is made from, to be broken one field at a time.
    func leafTemplate(path: String = "/workload") -> CertificateTemplate {
        CertificateTemplate(
            subject: [("O", "Test")],
            notBefore: Self.now - 60,
            notAfter: Self.now + 3600,
            isCA: false,
            keyUsage: [.digitalSignature],
            extendedKeyUsage: [.serverAuth, .clientAuth],
            uris: ["spiffe://\(trustDomain.name)\(path)"]
        )
    }

    /// Signs `template` with the intermediate and returns the chain leaf first.
    func chain(_ template: CertificateTemplate) throws -> [Certificate] {
        let key = try PrivateKey(generating: .ecP256)
        let leaf = try template.sign(
            subjectKey: try key.publicKey,
            issuer: intermediate.certificate,
            issuerKey: intermediate.privateKey
        )
        return [leaf, intermediate.certificate]
    }
}
