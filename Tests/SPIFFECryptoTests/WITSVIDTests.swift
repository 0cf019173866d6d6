import Foundation
import SPIFFE
import Testing

@testable import SPIFFECrypto

/// WIT-SVIDs by the WIT-SVID standard: what the signer makes, and every validation rule, each broken once on a
/// token that is otherwise valid and properly signed (so only that rule can refuse it).
@Suite("WIT-SVIDs")
struct WITSVIDTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    let trustDomain = try! TrustDomain("example.org")
    let subject = try! SPIFFEID("spiffe://example.org/web")
    let authorityKey = try! PrivateKey(generating: .ecP256)
    let workloadKey = try! PrivateKey(generating: .ecP256)

    var signer: WITSVIDSigner { try! WITSVIDSigner(privateKey: authorityKey, keyID: "wit-kid-1") }

    var bundle: SPIFFEBundle {
        SPIFFEBundle(trustDomain: trustDomain, witAuthorities: [try! signer.bundleAuthority])
    }

    func validate(_ token: String, bundle: SPIFFEBundle? = nil, at time: Date = Self.now) throws -> WITSVID {
        let bundle = bundle ?? self.bundle
        return try WITSVIDValidator().validate(token, bundles: { $0 == bundle.trustDomain ? bundle : nil }, at: time)
    }

    /// A token with exactly this header and these claims, signed by `key` (the authority unless given).
    func token(header: [String: JSONValue], claims: [String: JSONValue], key: PrivateKey? = nil) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let input =
            try encoder.encode(header).base64URLEncodedString() + "."
            + encoder.encode(claims).base64URLEncodedString()
        let signature = try (key ?? authorityKey).signature(over: Data(input.utf8), algorithm: .es256)
        return input + "." + signature.base64URLEncodedString()
    }

    var goodHeader: [String: JSONValue] { ["alg": "ES256", "kid": "wit-kid-1", "typ": "wit+jwt"] }

    var goodClaims: [String: JSONValue] {
        let jwk = try! workloadKey.publicKey.jwk
        return [
            "sub": .string(subject.description), "exp": .number(Self.now.timeIntervalSince1970 + 300),
            "iat": .number(Self.now.timeIntervalSince1970),
            "cnf": [
                "jwk": [
                    "kty": "EC", "crv": .string(jwk.curve!), "x": .string(jwk.x!), "y": .string(jwk.y!), "alg": "ES256",
                ]
            ],
        ]
    }

    @Test("the signer's token has the standard's header and claims, no aud, and validates with cnf = the workload key")
    func signsAndValidates() throws {
        let svid = try signer.sign(
            spiffeID: subject,
            workloadKey: try workloadKey.publicKey,
            expiresAt: Self.now + 300,
            issuedAt: Self.now
        )
        let parts = svid.token.split(separator: ".")
        let header = try JSONParser.parse([UInt8](base64URLEncoded: parts[0])!).objectValue!
        #expect(header == ["alg": "ES256", "kid": "wit-kid-1", "typ": "wit+jwt"])
        let claims = try JSONParser.parse([UInt8](base64URLEncoded: parts[1])!).objectValue!
        #expect(Set(claims.keys) == ["sub", "exp", "iat", "jti", "cnf"])
        let validated = try validate(svid.token)
        #expect(validated.spiffeID == subject)
        #expect(validated.confirmationKey == (try workloadKey.publicKey.jwk))
        #expect(validated.confirmationAlgorithm == .es256)
        #expect(validated.expiresAt == Self.now + 300)
        // Two tokens never share a jti.
        let again = try signer.sign(
            spiffeID: subject,
            workloadKey: try workloadKey.publicKey,
            expiresAt: Self.now + 300,
            issuedAt: Self.now
        )
        #expect(again.claims["jti"] != svid.claims["jti"])
        // The hand-built good token passes too, so each refusal below is its one broken rule.
        #expect(try validate(try token(header: goodHeader, claims: goodClaims)).spiffeID == subject)
    }

    @Test("every rule, broken once, refuses the token with its reason")
    func refusals() throws {
        var cases: [(String, String)] = []
        func header(_ change: (inout [String: JSONValue]) -> Void) throws -> String {
            var header = goodHeader
            change(&header)
            return try token(header: header, claims: goodClaims)
        }
        func claims(_ change: (inout [String: JSONValue]) -> Void) throws -> String {
            var claims = goodClaims
            change(&claims)
            return try token(header: goodHeader, claims: claims)
        }
        cases.append((try header { $0["typ"] = "JWT" }, "type must be wit+jwt"))
        cases.append((try header { $0["typ"] = nil }, "type must be wit+jwt"))
        cases.append((try header { $0["alg"] = "none" }, "not allowed"))
        cases.append((try header { $0["alg"] = "HS256" }, "not allowed"))
        cases.append((try header { $0["kid"] = nil }, "missing key id"))
        cases.append((try header { $0["crit"] = ["exp"] }, "critical"))
        cases.append((try header { $0["kid"] = "unknown" }, "no WIT authority"))
        cases.append((try claims { $0["sub"] = nil }, "no subject"))
        cases.append((try claims { $0["sub"] = "https://example.org/web" }, "not a valid spiffe id"))
        cases.append((try claims { $0["sub"] = "spiffe://other.org/web" }, "no bundle for trust domain other.org"))
        cases.append((try claims { $0["exp"] = nil }, "no expiry"))
        cases.append((try claims { $0["exp"] = .number(Self.now.timeIntervalSince1970 - 3600) }, "expired"))
        cases.append((try claims { $0["nbf"] = .number(Self.now.timeIntervalSince1970 + 3600) }, "not valid yet"))
        cases.append((try claims { $0["aud"] = "api" }, "must not have an audience"))
        cases.append((try claims { $0["cnf"] = nil }, "no cnf"))
        cases.append((try claims { $0["cnf"] = ["x5t#S256": "abc"] }, "no jwk"))
        func cnf(_ change: (inout [String: JSONValue]) -> Void) throws -> String {
            var claims = goodClaims
            var jwk = claims["cnf"]!.objectValue!["jwk"]!.objectValue!
            change(&jwk)
            claims["cnf"] = ["jwk": .object(jwk)]
            return try token(header: goodHeader, claims: claims)
        }
        cases.append((try cnf { $0["alg"] = nil }, "cnf.jwk.alg is missing"))
        cases.append((try cnf { $0["alg"] = "HS256" }, "cnf.jwk.alg is missing or not allowed"))
        cases.append((try cnf { $0["alg"] = "RS256" }, "does not fit"))
        cases.append((try cnf { $0["d"] = "c2VjcmV0" }, "holds a private key"))
        cases.append((try cnf { $0["x"] = "AAAA" }, "not a usable public key"))
        // Signed by another key under the right kid, or tampered after signing.
        cases.append((try token(header: goodHeader, claims: goodClaims, key: workloadKey), "does not verify"))
        let good = try token(header: goodHeader, claims: goodClaims)
        var tampered = goodClaims
        tampered["sub"] = "spiffe://example.org/admin"
        let forged =
            good.split(separator: ".")[0] + "."
            + (try JSONEncoder().encode(tampered)).base64URLEncodedString() + "." + good.split(separator: ".")[2]
        cases.append((String(forged), "does not verify"))
        cases.append(("a.b", "three dot-separated"))
        for (token, reason) in cases {
            do {
                _ = try validate(token)
                Issue.record("accepted a token that should fail with \(reason)")
            } catch {
                #expect("\(error)".contains(reason), "expected \(reason): \(error)")
            }
        }
    }

    @Test("a JWT-SVID key under the same kid never validates a WIT-SVID")
    func jwtKeysAreNotWITKeys() throws {
        let token = try token(header: goodHeader, claims: goodClaims)
        let jwtOnly = SPIFFEBundle(
            trustDomain: trustDomain,
            jwtAuthorities: [.init(keyID: "wit-kid-1", key: try authorityKey.publicKey.jwk)]
        )
        #expect(throws: CryptoError.self) { try validate(token, bundle: jwtOnly) }
        // And the JWT-SVID validator, given the same key as a JWT authority, refuses the WIT-SVID by its type.
        var claims = goodClaims
        claims["aud"] = "api"
        let withAudience = try self.token(header: goodHeader, claims: claims)
        do {
            _ = try JWTSVIDValidator().validate(withAudience, audience: "api", bundles: { _ in jwtOnly }, at: Self.now)
            Issue.record("a WIT-SVID passed as a JWT-SVID")
        } catch {
            #expect("\(error)".contains("type"), "\(error)")
        }
    }

    @Test("a private key JWK holds d and matches its public key")
    func privateJWK() throws {
        let document = try JSONParser.parse([UInt8](try workloadKey.privateJWKData)).objectValue!
        let publicJWK = try workloadKey.publicKey.jwk
        #expect(document["kty"] == "EC" && document["crv"] == "P-256" && document["alg"] == "ES256")
        #expect(document["x"]?.stringValue == publicJWK.x && document["y"]?.stringValue == publicJWK.y)
        #expect(Data(base64URLEncoded: document["d"]!.stringValue!)?.count == 32)
        #expect(throws: CryptoError.self) { _ = try PrivateKey(generating: .rsa2048).privateJWKData }
    }
}

// Literals for hand-built headers and claims.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    init(stringLiteral value: String) { self = .string(value) }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(uniqueKeysWithValues: elements))
    }
}
