import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

@Suite("Certificates, CSRs and PEM")
struct CertificateTests {
    @Test("an issued SVID exposes its SPIFFE ID, validity, key usage, constraints and serial")
    func readsFields() throws {
        let pki = try TestPKI()
        let svid = try pki.svid(path: "/ns/shop/sa/api")
        let leaf = svid.leaf
        #expect(leaf.spiffeID?.description == "spiffe://example.org/ns/shop/sa/api")
        #expect(leaf.uriSANs == ["spiffe://example.org/ns/shop/sa/api"])
        #expect(leaf.notAfter == TestPKI.now + 3600)
        #expect(leaf.notBefore == TestPKI.now - CertificateAuthority.backdate)
        #expect(leaf.keyUsage == [.digitalSignature, .keyEncipherment, .keyAgreement])
        #expect(leaf.isKeyUsageCritical)
        #expect(leaf.extendedKeyUsage == [.serverAuth, .clientAuth])
        #expect(!leaf.isCA)
        #expect(leaf.serialNumber.count == 16)
        #expect(pki.root.certificate.isCA)
        #expect(pki.root.certificate.keyUsage?.contains(.keyCertSign) == true)
        #expect(pki.root.certificate.uriSANs == ["spiffe://example.org"])
        #expect(pki.root.isRoot && !pki.intermediate.isRoot)
        #expect(leaf.isIssued(by: pki.intermediate.certificate))
        #expect(!leaf.isIssued(by: pki.root.certificate))
    }

    @Test("serials are random 128-bit numbers")
    func serials() throws {
        let pki = try TestPKI()
        let serials = try (0..<20).map { _ in try pki.svid().leaf.serialNumberHex }
        #expect(Set(serials).count == 20)
        #expect(serials.allSatisfy { $0.count == 32 })
    }

    @Test("chains parse from concatenated DER and from PEM, leaf first")
    func parsesChains() throws {
        let pki = try TestPKI()
        let svid = try pki.svid()
        let fromDER = try Certificate.chain(derConcatenated: svid.concatenatedDER)
        #expect(fromDER == svid.certificates)
        let pem = svid.certificates.map(\.pemEncoded).joined()
        #expect(try Certificate.chain(pemEncoded: "explanatory text\n" + pem) == svid.certificates)
        #expect(try Certificate(pemEncoded: svid.leaf.pemEncoded) == svid.leaf)
    }

    @Test("truncated DER, garbage PEM and wrong blocks are errors, never crashes")
    func badInput() throws {
        let pki = try TestPKI()
        let der = try pki.svid().concatenatedDER
        for cut in stride(from: 1, to: der.count, by: 37) {
            #expect(throws: CryptoError.self) { try Certificate.chain(derConcatenated: der.prefix(cut)) }
        }
        #expect(throws: CryptoError.self) { try Certificate(derEncoded: pki.root.certificate.derEncoded + Data([0])) }
        #expect(throws: CryptoError.self) { try Certificate.chain(pemEncoded: "") }
        #expect(throws: CryptoError.self) { try Certificate.chain(pemEncoded: "garbage") }
        #expect(throws: CryptoError.self) {
            try Certificate.chain(pemEncoded: "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        }
        #expect(throws: CryptoError.self) {
            try Certificate.chain(pemEncoded: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        }
        #expect(throws: CryptoError.self) {
            try Certificate.chain(pemEncoded: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n")
        }
        #expect(throws: CryptoError.self) {
            try Certificate.chain(pemEncoded: try PrivateKey(generating: .ecP256).pemEncoded)
        }
        let truncatedPEM = String(pki.root.certificate.pemEncoded.dropLast(30))
        #expect(throws: CryptoError.self) { try Certificate.chain(pemEncoded: truncatedPEM) }
    }

    @Test("a CSR carries the requested names and proves possession of its key")
    func csr() throws {
        let key = try PrivateKey(generating: .ecP384)
        let id = try SPIFFEID("spiffe://example.org/web")
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: id, dnsNames: ["web.example.org"])
        #expect(csr.uriSANs == [id.description])
        #expect(csr.dnsNames == ["web.example.org"])
        #expect(csr.hasValidSignature)
        #expect(try csr.publicKey == key.publicKey)
        let reparsed = try CertificateSigningRequest(pemEncoded: csr.pemEncoded)
        #expect(reparsed == csr && reparsed.hasValidSignature)

        // Flip a byte inside the signature: the proof of possession must fail.
        var der = csr.derEncoded
        der[der.count - 5] ^= 0x01
        if let tampered = try? CertificateSigningRequest(derEncoded: der) {
            #expect(!tampered.hasValidSignature)
        }
    }

    @Test("CSRs made here pass openssl req -verify; CSRs made by openssl verify here")
    func csrInterop() async throws {
        let cli = try OpenSSLCLI()
        defer { cli.remove() }
        let key = try PrivateKey(generating: .ecP256)
        let csr = try CertificateSigningRequest(
            privateKey: key,
            spiffeID: try SPIFFEID("spiffe://example.org/web"),
            dnsNames: ["web.local"]
        )
        try cli.write("mine.csr", csr.pemEncoded)
        let verify = try await cli.run("req", "-in", "mine.csr", "-verify", "-noout", "-text")
        #expect(verify.status == 0, "\(verify.output)")
        #expect(verify.output.contains("URI:spiffe://example.org/web"))
        #expect(verify.output.contains("DNS:web.local"))

        try cli.write("key.pem", try key.pemEncoded)
        let made = try await cli.run(
            "req",
            "-new",
            "-key",
            "key.pem",
            "-subj",
            "/O=CLI",
            "-addext",
            "subjectAltName=URI:spiffe://example.org/cli,DNS:cli.local",
            "-out",
            "cli.csr"
        )
        #expect(made.status == 0, "\(made.output)")
        let theirs = try CertificateSigningRequest(pemEncoded: try cli.read("cli.csr"))
        #expect(theirs.hasValidSignature)
        #expect(theirs.uriSANs == ["spiffe://example.org/cli"])
        #expect(theirs.dnsNames == ["cli.local"])
    }

    @Test("PEM blocks parse with precise errors")
    func pem() throws {
        let blocks = try PEM.blocks(
            in: PEM.encode(label: "A", der: Data([1])) + "text\n" + PEM.encode(label: "B", der: Data([2]))
        )
        #expect(blocks == [PEM.Block(label: "A", der: Data([1])), PEM.Block(label: "B", der: Data([2]))])
        #expect(throws: CryptoError.self) { try PEM.blocks(in: "-----BEGIN A-----\nAQ==\n-----END B-----\n") }
        #expect(throws: CryptoError.self) { try PEM.blocks(in: "-----BEGIN A-----\n-----BEGIN A-----\n") }
        #expect(throws: CryptoError(.unsupportedKey, "")) {
            try PEM.blocks(
                in: "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAQ==\n-----END RSA PRIVATE KEY-----\n"
            )
        }
    }
}
