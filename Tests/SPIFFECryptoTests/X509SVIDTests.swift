import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

@Suite("X509-SVID validation and chain verification")
struct X509SVIDTests {
    @Test("a proper SVID verifies against its bundle through the intermediate")
    func verifies() throws {
        let pki = try TestPKI()
        let svid = try pki.svid()
        let id = try X509SVIDVerifier.verify(svid.certificates, bundle: pki.bundle, at: TestPKI.now)
        #expect(id.description == "spiffe://example.org/workload")
        let byTrustDomain = try X509SVIDVerifier.verify(
            svid.certificates,
            bundles: [pki.trustDomain: pki.bundle],
            at: TestPKI.now + 60
        )
        #expect(byTrustDomain == id)
    }

    /// Each case breaks exactly one rule of the X509-SVID spec.
    static let violations: [(String, @Sendable (inout CertificateTemplate) -> Void, String)] = [
        (
            "CA leaf",
            {
                $0.isCA = true; $0.keyUsage = [.digitalSignature, .keyCertSign]
            }, "must not have CA flag"
        ),
        ("keyCertSign on a leaf", { $0.keyUsage = [.digitalSignature, .keyCertSign] }, "keyCertSign"),
        ("CA flag only", { $0.isCA = true }, "must not have CA flag"),
        ("no URI SAN", { $0.uris = [] }, "exactly one URI SAN, found 0"),
        ("two URI SANs", { $0.uris = ["spiffe://example.org/a", "spiffe://example.org/b"] }, "found 2"),
        ("URI SAN not a SPIFFE ID", { $0.uris = ["https://example.org/a"] }, "not a valid SPIFFE ID"),
        ("root ID on a leaf", { $0.uris = ["spiffe://example.org"] }, "non-root path"),
        ("no key usage", { $0.keyUsage = nil }, "key usage extension"),
        ("key usage not critical", { $0.isKeyUsageCritical = false }, "must be critical"),
        ("missing digitalSignature", { $0.keyUsage = [.keyEncipherment] }, "digitalSignature"),
        ("cRLSign on a leaf", { $0.keyUsage = [.digitalSignature, .cRLSign] }, "cRLSign"),
        ("serverAuth only", { $0.extendedKeyUsage = [.serverAuth] }, "serverAuth and clientAuth"),
        ("empty subject, SAN not critical", { $0.subject = [] }, "SAN extension critical"),
    ]

    @Test("every X509-SVID rule violation is rejected", arguments: violations)
    func rejectsViolation(
        name: String,
        breakRule: @Sendable (inout CertificateTemplate) -> Void,
        fragment: String
    ) throws {
        let pki = try TestPKI()
        var template = pki.leafTemplate()
        breakRule(&template)
        let chain = try pki.chain(template)
        do {
            _ = try X509SVIDVerifier.verify(chain, bundle: pki.bundle, at: TestPKI.now)
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.code == .invalidX509SVID, "\(name): \(error)")
            #expect(error.message.contains(fragment), "\(name): \(error.message)")
        }
    }

    @Test("an empty subject with a critical SAN is allowed")
    func emptySubjectCriticalSAN() throws {
        let pki = try TestPKI()
        var template = pki.leafTemplate()
        template.subject = []
        template.isSubjectAltNameCritical = true
        _ = try X509SVIDVerifier.verify(try pki.chain(template), bundle: pki.bundle, at: TestPKI.now)
    }

    @Test("a signing certificate without CA, without keyCertSign, or with a path ID is rejected")
    func badSigners() throws {
        let pki = try TestPKI()
        let key = try PrivateKey(generating: .ecP256)
        for (breakRule, fragment) in [
            ({ (t: inout CertificateTemplate) in t.isCA = false }, "CA flag set to true"),
            ({ (t: inout CertificateTemplate) in t.keyUsage = [.cRLSign] }, "keyCertSign"),
            ({ (t: inout CertificateTemplate) in t.uris = ["spiffe://example.org/ca"] }, "must not have a path"),
        ] {
            var signerTemplate = CertificateTemplate(
                subject: [("CN", "signer")],
                notBefore: TestPKI.now - 60,
                notAfter: TestPKI.now + 3600,
                isCA: true,
                keyUsage: [.keyCertSign],
                uris: ["spiffe://example.org"]
            )
            breakRule(&signerTemplate)
            let signer = try signerTemplate.sign(
                subjectKey: key.publicKey,
                issuer: pki.root.certificate,
                issuerKey: pki.root.privateKey
            )
            let leaf = try pki.leafTemplate().sign(
                subjectKey: try PrivateKey(generating: .ecP256).publicKey,
                issuer: signer,
                issuerKey: key
            )
            #expect {
                try X509SVIDVerifier.verify([leaf, signer], bundle: pki.bundle, at: TestPKI.now)
            } throws: { error in
                (error as? CryptoError)?.message.contains(fragment) == true
            }
        }
    }

    @Test("expired, not yet valid, wrong trust domain and broken chains do not verify")
    func untrusted() throws {
        let pki = try TestPKI()
        let svid = try pki.svid(ttl: .seconds(600))
        let expired = TestPKI.now + 601
        #expect { try X509SVIDVerifier.verify(svid.certificates, bundle: pki.bundle, at: expired) } throws: {
            ($0 as? CryptoError)?.message.contains("expired") == true
        }
        let early = TestPKI.now - 3600
        #expect { try X509SVIDVerifier.verify(svid.certificates, bundle: pki.bundle, at: early) } throws: {
            ($0 as? CryptoError)?.message.contains("not yet valid") == true
        }

        let other = try TestPKI(trustDomain: "other.org")
        let foreign = try other.svid()
        #expect { try X509SVIDVerifier.verify(foreign.certificates, bundle: pki.bundle, at: TestPKI.now) } throws: {
            ($0 as? CryptoError)?.message.contains("not in the bundle's trust domain") == true
        }
        #expect(throws: CryptoError(.untrustedChain, "")) {
            try X509SVIDVerifier.verify(foreign.certificates, bundles: [pki.trustDomain: pki.bundle], at: TestPKI.now)
        }

        // Same trust domain name, different root: the chain does not lead to the bundle.
        let impostor = try TestPKI(trustDomain: "example.org")
        #expect(throws: CryptoError(.untrustedChain, "")) {
            try X509SVIDVerifier.verify(try impostor.svid().certificates, bundle: pki.bundle, at: TestPKI.now)
        }
        // The intermediate left out: the leaf cannot reach the root.
        #expect(throws: CryptoError(.untrustedChain, "")) {
            try X509SVIDVerifier.verify([svid.leaf], bundle: pki.bundle, at: TestPKI.now)
        }
        // An empty bundle trusts nothing.
        #expect(throws: CryptoError(.untrustedChain, "")) {
            try X509SVIDVerifier.verify(
                svid.certificates,
                bundle: X509Bundle(trustDomain: pki.trustDomain, authorities: []),
                at: TestPKI.now
            )
        }
    }

    @Test("an SVID's private key must match its leaf")
    func keyMatch() throws {
        let pki = try TestPKI()
        let svid = try pki.svid()
        #expect(throws: CryptoError(.invalidX509SVID, "")) {
            try X509SVID(certificates: svid.certificates, privateKey: try PrivateKey(generating: .ecP256))
        }
    }

    @Test("certificates issued here pass openssl verify; a CLI-made chain verifies here")
    func cliInterop() async throws {
        let cli = try OpenSSLCLI()
        defer { cli.remove() }
        let pki = try TestPKI()
        let now = Date()
        let root = try CertificateAuthority.makeRoot(
            trustDomain: pki.trustDomain,
            keyType: .ecP384,
            ttl: .seconds(86_400),
            now: now
        )
        let intermediate = try root.makeIntermediate(keyType: .rsa2048, ttl: .seconds(3600), now: now)
        let key = try PrivateKey(generating: .ecP256)
        let chain = try intermediate.issueX509SVID(
            csr: CertificateSigningRequest(privateKey: key, spiffeID: nil),
            spiffeID: try SPIFFEID("spiffe://example.org/web"),
            ttl: .seconds(600),
            now: now
        )
        try cli.write("root.pem", root.certificate.pemEncoded)
        try cli.write("chain.pem", chain.dropFirst().map(\.pemEncoded).joined())
        try cli.write("leaf.pem", chain[0].pemEncoded)
        let verify = try await cli.run("verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem")
        #expect(verify.status == 0, "\(verify.output)")
        let text = try await cli.run("x509", "-in", "leaf.pem", "-noout", "-text").output
        #expect(text.contains("URI:spiffe://example.org/web"))
        #expect(text.contains("CA:FALSE"))

        // The other way: a CA and SVID made with the CLI load and verify here.
        try cli.write(
            "ca.cnf",
            """
            [req]
            distinguished_name = dn
            [dn]
            [ca]
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            subjectAltName = URI:spiffe://cli.test
            [leaf]
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth, clientAuth
            subjectAltName = URI:spiffe://cli.test/app
            """
        )
        for command in [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-subj", "/CN=cli", "-days", "2", "-config", "ca.cnf", "-extensions", "ca",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key",
                "-out", "leaf.csr", "-subj", "/CN=app", "-config", "ca.cnf",
            ],
            [
                "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "cli-leaf.pem", "-days", "1", "-extfile", "ca.cnf", "-extensions", "leaf",
            ],
        ] {
            let (status, output) = try await cli.run(command)
            #expect(status == 0, "\(command): \(output)")
        }
        let cliCA = try Certificate(pemEncoded: try cli.read("ca.pem"))
        let cliLeaf = try Certificate(pemEncoded: try cli.read("cli-leaf.pem"))
        let bundle = X509Bundle(trustDomain: try TrustDomain("cli.test"), authorities: [cliCA])
        #expect(
            try X509SVIDVerifier.verify([cliLeaf], bundle: bundle, at: Date()).description == "spiffe://cli.test/app"
        )
        let svid = try X509SVID(
            certificates: [cliLeaf],
            privateKey: try PrivateKey(pemEncoded: try cli.read("leaf.key"))
        )
        #expect(svid.spiffeID.path == "/app")
        _ = try CertificateAuthority(certificate: cliCA, privateKey: try PrivateKey(pemEncoded: try cli.read("ca.key")))
    }
}
