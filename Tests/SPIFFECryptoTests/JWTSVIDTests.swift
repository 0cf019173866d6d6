import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

@Suite("JWT-SVIDs")
struct JWTSVIDTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    let trustDomain = try! TrustDomain("example.org")
    let subject = try! SPIFFEID("spiffe://example.org/web")

    func signer(
        _ type: KeyType = .ecP256,
        algorithm: JWTAlgorithm? = nil,
        keyID: String = "kid-1"
    ) throws -> JWTSVIDSigner {
        try JWTSVIDSigner(privateKey: try PrivateKey(generating: type), keyID: keyID, algorithm: algorithm)
    }

    func bundles(_ signers: JWTSVIDSigner...) throws -> (TrustDomain) -> SPIFFEBundle? {
        let bundle = SPIFFEBundle(trustDomain: trustDomain, jwtAuthorities: try signers.map { try $0.bundleAuthority })
        return { $0 == bundle.trustDomain ? bundle : nil }
    }

    func mint(_ signer: JWTSVIDSigner, audience: [String] = ["api"], ttl: TimeInterval = 300) throws -> JWTSVID {
        try signer.sign(spiffeID: subject, audience: audience, expiresAt: Self.now + ttl, issuedAt: Self.now)
    }

    static let algorithms: [(KeyType, JWTAlgorithm)] = [
        (.ecP256, .es256), (.ecP384, .es384), (.rsa2048, .rs256), (.rsa2048, .ps256),
    ]

    @Test("tokens signed with each algorithm validate and return their claims", arguments: algorithms)
    func signAndValidate(type: KeyType, algorithm: JWTAlgorithm) throws {
        let signer = try signer(type, algorithm: algorithm)
        let svid = try mint(signer, audience: ["api", "db"])
        let header = try JSONDecoder().decode(
            [String: String].self,
            from: Data(base64URLEncoded: svid.token.split(separator: ".")[0])!
        )
        #expect(header == ["alg": algorithm.rawValue, "kid": "kid-1", "typ": "JWT"])
        let validated = try JWTSVIDValidator().validate(
            svid.token,
            audience: "db",
            bundles: try bundles(signer),
            at: Self.now + 10
        )
        #expect(validated.spiffeID == subject)
        #expect(validated.audience == ["api", "db"])
        #expect(validated.expiresAt == Self.now + 300)
        #expect(validated.claims["iat"] == .number(Self.now.timeIntervalSince1970))
        if algorithm.isECDSA {
            let coordinate = type == .ecP256 ? 32 : 48
            #expect(Data(base64URLEncoded: svid.token.split(separator: ".")[2])?.count == 2 * coordinate)
        }
    }

    /// A token with arbitrary header and claims, signed by `signer` the usual way.
    func forge(header: [String: JSONValue], claims: [String: JSONValue], signer: JWTSVIDSigner) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let input =
            try encoder.encode(header).base64URLEncodedString() + "." + encoder.encode(claims).base64URLEncodedString()
        let signature = try JWSSignature.sign(Data(input.utf8), key: signer.privateKey, algorithm: signer.algorithm)
        return input + "." + signature.base64URLEncodedString()
    }

    var goodClaims: [String: JSONValue] {
        [
            "sub": .string(subject.description), "aud": .array([.string("api")]),
            "exp": .number(Self.now.timeIntervalSince1970 + 300),
        ]
    }

    @Test("every kind of bad token is rejected with its reason")
    func rejections() throws {
        let signer = try signer()
        let other = try self.signer(keyID: "kid-1")
        let bundles = try bundles(signer)
        let validator = JWTSVIDValidator()
        let good = try mint(signer).token
        let parts = good.split(separator: ".").map(String.init)
        let header: [String: JSONValue] = ["alg": .string("ES256"), "kid": .string("kid-1"), "typ": .string("JWT")]
        func headerOnly(_ h: [String: JSONValue]) throws -> String {
            let encoded = try JSONEncoder().encode(h).base64URLEncodedString()
            return encoded + "." + parts[1] + "." + parts[2]
        }
        var claims = goodClaims
        claims["exp"] = .number(Self.now.timeIntervalSince1970 - 60)
        let expired = try forge(header: header, claims: claims, signer: signer)
        claims = goodClaims
        claims["sub"] = .string("spiffe://partner.org/web")
        let foreignDomain = try forge(header: header, claims: claims, signer: signer)
        claims = goodClaims
        claims["sub"] = nil
        let noSubject = try forge(header: header, claims: claims, signer: signer)
        claims = goodClaims
        claims["nbf"] = .number(Self.now.timeIntervalSince1970 + 600)
        let notYet = try forge(header: header, claims: claims, signer: signer)
        claims = goodClaims
        claims["aud"] = .array([])
        let emptyAudience = try forge(header: header, claims: claims, signer: signer)

        let cases: [(String, String, String)] = [
            (
                "alg none",
                try headerOnly(["alg": .string("none"), "kid": .string("kid-1")]).dropLast(parts[2].count) + "",
                "not allowed"
            ),
            ("HS256", try headerOnly(["alg": .string("HS256"), "kid": .string("kid-1")]), "\"HS256\" is not allowed"),
            ("no kid", try headerOnly(["alg": .string("ES256")]), "missing key id"),
            (
                "unknown kid", try headerOnly(["alg": .string("ES256"), "kid": .string("nope")]),
                "no JWT authority found for key id"
            ),
            (
                "bad typ",
                try headerOnly(["alg": .string("ES256"), "kid": .string("kid-1"), "typ": .string("at+jwt")]),
                "JWT or JOSE"
            ),
            (
                "extra header",
                try headerOnly(["alg": .string("ES256"), "kid": .string("kid-1"), "jku": .string("x")]),
                "unexpected parameter \"jku\""
            ),
            ("expired", expired, "expired"),
            ("not yet valid", notYet, "not valid yet"),
            ("wrong audience", good, "expected audience"),
            ("empty audience", emptyAudience, "non-empty list"),
            ("signed by a foreign key under the same kid", try mint(other).token, "signature does not verify"),
            ("bad signature", parts[0] + "." + parts[1] + "." + String(parts[2].reversed()), "signature"),
            ("two segments", parts[0] + "." + parts[1], "three dot-separated segments, found 2"),
            ("four segments", good + ".x", "found 4"),
            ("header not base64url", "@@." + parts[1] + "." + parts[2], "header is not base64url"),
            ("header not JSON", "AAAA." + parts[1] + "." + parts[2], "header is not a JSON object"),
            ("claims not JSON", parts[0] + ".AAAA." + parts[2], "claims is not a JSON object"),
            ("no subject", noSubject, "no subject"),
            ("foreign trust domain without bundle", foreignDomain, "no JWT bundle for trust domain partner.org"),
            ("oversized", good + String(repeating: "A", count: 17_000), "the limit is"),
            ("empty", "", "found 1"),
        ]
        for (name, token, fragment) in cases {
            let audience = name == "wrong audience" ? "other" : "api"
            do {
                _ = try validator.validate(token, audience: audience, bundles: bundles, at: Self.now)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.code == .invalidJWT || error.code == .invalidKey, "\(name): \(error)")
                #expect(error.message.contains(fragment), "\(name): \(error.message)")
                #expect(!error.description.contains(parts[2]), "error text must not echo the token")
            }
        }
    }

    @Test("a string audience is normalised to a list; clock skew is tolerated")
    func audienceAndSkew() throws {
        let signer = try signer()
        var claims = goodClaims
        claims["aud"] = .string("api")
        let token = try forge(
            header: ["alg": .string("ES256"), "kid": .string("kid-1")],
            claims: claims,
            signer: signer
        )
        let validated = try JWTSVIDValidator().validate(
            token,
            audience: "api",
            bundles: try bundles(signer),
            at: Self.now + 320
        )
        #expect(validated.audience == ["api"])
        #expect(throws: CryptoError.self) {
            try JWTSVIDValidator().validate(token, audience: "api", bundles: try bundles(signer), at: Self.now + 331)
        }
    }

    @Test("signers refuse keys that do not fit the algorithm, empty key IDs and empty audiences")
    func signerChecks() throws {
        #expect(throws: CryptoError.self) { try signer(.ecP256, algorithm: .rs256) }
        #expect(throws: CryptoError.self) { try signer(.rsa2048, algorithm: .es256) }
        #expect(throws: CryptoError.self) { try signer(keyID: "") }
        #expect(throws: CryptoError.self) { try mint(try signer(), audience: []) }
        let key = try PrivateKey(generating: .ecP256)
        #expect(JWTSVIDSigner.keyID(for: try key.publicKey) == JWTSVIDSigner.keyID(for: try key.publicKey))
        #expect(JWTSVIDSigner.keyID(for: try key.publicKey).count == 32)
    }

    @Test("signatures made here verify with openssl dgst (RS256, PS256 and ES256 via DER)")
    func cliVerifiesSignatures() async throws {
        let cli = try OpenSSLCLI()
        defer { cli.remove() }
        for (type, algorithm) in Self.algorithms where algorithm != .es384 {
            let signer = try signer(type, algorithm: algorithm)
            let parts = try mint(signer).token.split(separator: ".")
            try cli.write("input", Data((parts[0] + "." + parts[1]).utf8))
            var signature = Data(base64URLEncoded: parts[2])!
            if algorithm.isECDSA { signature = JWSSignature.derECDSA(fromRaw: signature, coordinateSize: 32)! }
            try cli.write("signature", signature)
            try cli.write("public.pem", try signer.privateKey.publicKey.pemEncoded)
            var arguments = ["dgst", "-sha256", "-verify", "public.pem", "-signature", "signature"]
            if algorithm == .ps256 {
                arguments += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
            }
            let (status, output) = try await cli.run(arguments + ["input"])
            #expect(status == 0 && output.contains("Verified OK"), "\(algorithm): \(output)")
        }
    }
}
