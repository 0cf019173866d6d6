import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

@Suite("Keys")
struct PrivateKeyTests {
    @Test("generated keys round-trip through PKCS#8 DER and PEM", arguments: KeyType.allCases)
    func roundTrip(type: KeyType) throws {
        let key = try PrivateKey(generating: type)
        #expect(key.algorithm == type.algorithm)
        let der = try key.pkcs8DER
        let fromDER = try PrivateKey(pkcs8DER: der)
        #expect(try fromDER.publicKey == key.publicKey)
        let pem = try key.pemEncoded
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(try PrivateKey(pemEncoded: pem).publicKey == key.publicKey)
        #expect(!key.description.contains(pem.dropFirst(28).prefix(20)))
    }

    @Test("an EC key read without the decoder framework signs what its certificate's public key verifies")
    func fastECPathSigns() throws {
        for type in [KeyType.ecP256, .ecP384] {
            let parsed = try PrivateKey(pkcs8DER: try PrivateKey(generating: type).pkcs8DER)
            let ca = try CertificateAuthority.makeRoot(
                trustDomain: TrustDomain("example.org"),
                keyType: .ecP256,
                ttl: .seconds(3600),
                now: Date()
            )
            let id = try SPIFFEID("spiffe://example.org/fast")
            let chain = try ca.issueX509SVID(
                csr: CertificateSigningRequest(privateKey: parsed, spiffeID: id),
                spiffeID: id,
                ttl: .seconds(600),
                dnsNames: [],
                now: Date()
            )
            // The CSR was signed with the parsed key (the CA checks it), and the key matches the issued leaf.
            #expect(try X509SVID(certificates: chain, privateKey: parsed).spiffeID == id)
            #expect(try parsed.pkcs8DER == (try PrivateKey(pkcs8DER: try parsed.pkcs8DER)).pkcs8DER)
        }
    }

    @Test("public keys round-trip through JWK", arguments: KeyType.allCases)
    func jwkRoundTrip(type: KeyType) throws {
        let publicKey = try PrivateKey(generating: type).publicKey
        let jwk = try publicKey.jwk
        switch type {
        case .ecP256, .ecP384:
            #expect(jwk.keyType == "EC")
            #expect(jwk.curve == (type == .ecP256 ? "P-256" : "P-384"))
            #expect(Data(base64URLEncoded: jwk.x!)?.count == (type == .ecP256 ? 32 : 48))
        case .rsa2048:
            #expect(jwk.keyType == "RSA")
            #expect(jwk.exponent == "AQAB")
            #expect(Data(base64URLEncoded: jwk.modulus!)?.count == 256)
        }
        #expect(try PublicKey(jwk: jwk) == publicKey)
        #expect(try PublicKey(spkiDER: publicKey.spkiDER) == publicKey)
    }

    @Test("a JWK whose point is not on the curve is refused")
    func offCurve() throws {
        var jwk = try PrivateKey(generating: .ecP256).publicKey.jwk
        var y = Data(base64URLEncoded: jwk.y!)!
        y[31] ^= 0x01
        jwk.y = y.base64URLEncodedString()
        #expect(throws: CryptoError.self) { try PublicKey(jwk: jwk) }
        jwk.x = "AQ"
        #expect(throws: CryptoError.self) { try PublicKey(jwk: jwk) }
        #expect(throws: CryptoError.self) { try PublicKey(jwk: JSONWebKey(keyType: "OKP", curve: "Ed25519", x: "AA")) }
        #expect(throws: CryptoError.self) {
            try PublicKey(jwk: JSONWebKey(keyType: "EC", curve: "P-192", x: "AA", y: "AA"))
        }
    }

    @Test("keys made by the openssl CLI load here, and keys made here pass openssl's checks")
    func cliInterop() async throws {
        let cli = try OpenSSLCLI()
        defer { cli.remove() }
        for (name, options) in [
            ("p256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            ("p384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ] {
            let generated = try await cli.run(["genpkey"] + options + ["-out", cli.path("\(name).pem")])
            #expect(generated.status == 0, "\(generated.output)")
            let key = try PrivateKey(pemEncoded: try cli.read("\(name).pem"))
            try await cli.run("pkey", "-in", "\(name).pem", "-pubout", "-outform", "DER", "-out", "\(name).pub.der")
            #expect(try key.publicKey.spkiDER == cli.readData("\(name).pub.der"))
        }
        // Traditional "EC PRIVATE KEY" form.
        try await cli.run("ec", "-in", "p256.pem", "-out", "p256.trad.pem")
        #expect(try cli.read("p256.trad.pem").contains("BEGIN EC PRIVATE KEY"))
        _ = try PrivateKey(pemEncoded: try cli.read("p256.trad.pem"))

        for type in KeyType.allCases {
            try cli.write("mine.pem", try PrivateKey(generating: type).pemEncoded)
            let check = try await cli.run("pkey", "-in", "mine.pem", "-check", "-noout")
            #expect(check.status == 0, "\(type): \(check.output)")
        }
    }

    @Test("encrypted, short, foreign and malformed keys are refused with a reason")
    func refusesBadKeys() async throws {
        let cli = try OpenSSLCLI()
        defer { cli.remove() }
        try await cli.run(
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:x",
            "-out",
            "enc.pem"
        )
        #expect(throws: CryptoError(.unsupportedKey, "")) { try PrivateKey(pemEncoded: try cli.read("enc.pem")) }
        try await cli.run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "short.pem")
        #expect(throws: CryptoError(.unsupportedKey, "")) { try PrivateKey(pemEncoded: try cli.read("short.pem")) }
        try await cli.run("genpkey", "-algorithm", "ED25519", "-out", "ed.pem")
        #expect(throws: CryptoError(.unsupportedKey, "")) { try PrivateKey(pemEncoded: try cli.read("ed.pem")) }

        let der = try PrivateKey(generating: .ecP256).pkcs8DER
        #expect(throws: CryptoError.self) { try PrivateKey(pkcs8DER: der.prefix(der.count - 1)) }
        #expect(throws: CryptoError.self) { try PrivateKey(pkcs8DER: der + Data([0])) }
        #expect(throws: CryptoError.self) { try PrivateKey(pkcs8DER: Data()) }
        #expect(throws: CryptoError.self) { try PrivateKey(pemEncoded: "") }
        #expect(throws: CryptoError.self) {
            try PrivateKey(pemEncoded: "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n")
        }
        #expect(throws: CryptoError.self) { try PrivateKey(pemEncoded: "-----BEGIN PRIVATE KEY-----\nAAAA\n") }
    }

    @Test("random bytes never load as a key, certificate or CSR")
    func randomBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 2, 16, 64, 300, 1200] {
            for _ in 0..<25 {
                let bytes = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
                #expect(throws: CryptoError.self) { try PrivateKey(pkcs8DER: bytes) }
                #expect(throws: CryptoError.self) { try PublicKey(spkiDER: bytes) }
                #expect(throws: CryptoError.self) { try Certificate(derEncoded: bytes) }
                #expect(throws: CryptoError.self) { try CertificateSigningRequest(derEncoded: bytes) }
                if !bytes.isEmpty {
                    #expect(throws: CryptoError.self) { try Certificate.chain(derConcatenated: bytes) }
                }
            }
        }
    }
}
