import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

@Suite("Signing authority")
struct CertificateAuthorityTests {
    @Test("an SVID never outlives its authority")
    func ttlCappedAtCAExpiry() throws {
        let pki = try TestPKI()
        let svid = try pki.svid(ttl: .seconds(86_400 * 365))
        #expect(svid.leaf.notAfter == pki.intermediate.certificate.notAfter)
        let late = try pki.root.makeIntermediate(keyType: .ecP256, ttl: .seconds(86_400 * 365), now: TestPKI.now)
        #expect(late.certificate.notAfter == pki.root.certificate.notAfter)
    }

    @Test("roots are built for every key type and issue verifiable SVIDs", arguments: KeyType.allCases)
    func keyTypes(type: KeyType) throws {
        let pki = try TestPKI(keyType: type)
        let svid = try pki.svid()
        #expect(try X509SVIDVerifier.verify(svid.certificates, bundle: pki.bundle, at: TestPKI.now) == svid.spiffeID)
        #expect(pki.root.certificate.keyUsage?.contains(.keyCertSign) == true)
        #expect(pki.intermediate.intermediates == [pki.intermediate.certificate])
        #expect(pki.root.intermediates.isEmpty)
    }

    @Test("a root issues SVIDs whose chain is the leaf alone")
    func rootIssues() throws {
        let pki = try TestPKI()
        let key = try PrivateKey(generating: .ecP256)
        let chain = try pki.root.issueX509SVID(
            csr: CertificateSigningRequest(privateKey: key, spiffeID: nil),
            spiffeID: try SPIFFEID("spiffe://example.org/a"),
            ttl: .seconds(60),
            dnsNames: ["a.example.org", "*.svc.local"],
            now: TestPKI.now
        )
        #expect(chain.count == 1)
        #expect(chain[0].dnsNames == ["a.example.org", "*.svc.local"])
        _ = try X509SVIDVerifier.verify(chain, bundle: pki.bundle, at: TestPKI.now)
    }

    @Test("issuance refuses foreign IDs, CSRs asking for another ID, bad DNS names and dead authorities")
    func refusals() throws {
        let pki = try TestPKI()
        let key = try PrivateKey(generating: .ecP256)
        let plain = try CertificateSigningRequest(privateKey: key, spiffeID: nil)
        func issue(
            _ csr: CertificateSigningRequest = plain,
            _ id: String = "spiffe://example.org/a",
            dns: [String] = [],
            at now: Date = TestPKI.now,
            ttl: Duration = .seconds(60)
        ) throws -> [Certificate] {
            try pki.intermediate.issueX509SVID(csr: csr, spiffeID: try SPIFFEID(id), ttl: ttl, dnsNames: dns, now: now)
        }
        let refused = CryptoError(.issuanceRefused, "")
        #expect(throws: refused) { try issue(plain, "spiffe://other.org/a") }
        #expect(throws: refused) { try issue(plain, "spiffe://example.org") }
        let asking = try CertificateSigningRequest(
            privateKey: key,
            spiffeID: try SPIFFEID("spiffe://example.org/admin")
        )
        #expect(throws: refused) { try issue(asking, "spiffe://example.org/a") }
        _ = try issue(asking, "spiffe://example.org/admin")
        #expect(throws: refused) { try issue(dns: ["bad name"]) }
        #expect(throws: refused) { try issue(dns: ["-x.org"]) }
        #expect(throws: refused) { try issue(ttl: .zero) }
        #expect(throws: refused) { try issue(at: pki.intermediate.certificate.notAfter + 1) }
        #expect(throws: refused) { try issue(at: TestPKI.now - 3600) }
    }

    @Test("a CA certificate and key that do not belong together are refused")
    func mismatchedKey() throws {
        let pki = try TestPKI()
        #expect(throws: CryptoError(.invalidKey, "")) {
            try CertificateAuthority(certificate: pki.root.certificate, privateKey: try PrivateKey(generating: .ecP256))
        }
        #expect(throws: CryptoError(.invalidCertificate, "")) {
            try CertificateAuthority(certificate: try pki.svid().leaf, privateKey: pki.root.privateKey)
        }
    }

    @Test("bundle JSON made with the crypto module carries each authority's key next to x5c")
    func bundleJSON() throws {
        let pki = try TestPKI()
        let signer = try JWTSVIDSigner(privateKey: try PrivateKey(generating: .ecP256), keyID: "jwt-1")
        let bundle = SPIFFEBundle(
            trustDomain: pki.trustDomain,
            x509Authorities: [pki.root.certificate.derEncoded],
            jwtAuthorities: [try signer.bundleAuthority],
            sequenceNumber: 1
        )
        let json = try bundle.jwksData()
        let decoded = try SPIFFEBundle(trustDomain: pki.trustDomain, jwksData: json)
        #expect(decoded == bundle)
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        let keys = object?["keys"] as? [[String: Any]]
        #expect(keys?.first?["crv"] as? String == "P-256")
        #expect(keys?.first?["x"] as? String == (try pki.root.certificate.publicKey.jwk.x))
        #expect(try X509Bundle(decoded).authorities == [pki.root.certificate])
    }
}
