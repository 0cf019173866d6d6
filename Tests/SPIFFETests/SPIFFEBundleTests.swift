import Foundation
import Testing

@testable import SPIFFE

@Suite("SPIFFE bundle (JWKS) coding")
struct SPIFFEBundleTests {
    let trustDomain = try! TrustDomain("example.org")
    let ecKey = JSONWebKey(
        keyType: "EC",
        curve: "P-256",
        x: "fK-wKTnKL7KFLM27lqq5DC-bxrVaH6rDV-IcCSEOeL4",
        y: "wq-_Tg3XJbK_ZCCtEMs5FzWA6uOQr1YWg2Cz5Cb3dOA"
    )

    /// Stands in for the crypto module: any fixed JWK for each certificate.
    func fixedKey(_ der: Data) -> JSONWebKey { ecKey }

    @Test("WIT authorities: use wit-svid in the SPIFFE format, alone in the WIT JWKS, kids unique across JWT and WIT")
    func witAuthorities() throws {
        let bundle = SPIFFEBundle(
            trustDomain: trustDomain,
            jwtAuthorities: [.init(keyID: "jwt-1", key: ecKey)],
            witAuthorities: [.init(keyID: "wit-1", key: ecKey)]
        )
        let json = bundle.jwksData(format: .spiffe, x509AuthorityKey: fixedKey)
        let decoded = try SPIFFEBundle(trustDomain: trustDomain, jwksData: json)
        #expect(decoded == bundle)
        #expect(decoded.witAuthority(keyID: "wit-1") == ecKey && decoded.witAuthority(keyID: "jwt-1") == nil)
        let wit = bundle.jwksData(format: .standardWITAuthorities, x509AuthorityKey: fixedKey)
        let witKeys = try #require(
            (try JSONSerialization.jsonObject(with: wit) as? [String: Any])?["keys"] as? [[String: Any]]
        )
        #expect(witKeys.count == 1 && witKeys[0]["kid"] as? String == "wit-1" && witKeys[0]["use"] == nil)
        let jwt = bundle.jwksData(format: .standardJWTAuthorities, x509AuthorityKey: fixedKey)
        let jwtKeys = try #require(
            (try JSONSerialization.jsonObject(with: jwt) as? [String: Any])?["keys"] as? [[String: Any]]
        )
        #expect(jwtKeys.count == 1 && jwtKeys[0]["kid"] as? String == "jwt-1")
        let clash =
            #"{"keys":[{"kty":"EC","use":"jwt-svid","kid":"k","crv":"P-256","x":"\#(ecKey.x!)","y":"\#(ecKey.y!)"},{"kty":"EC","use":"wit-svid","kid":"k","crv":"P-256","x":"\#(ecKey.x!)","y":"\#(ecKey.y!)"}]}"#
        #expect(throws: BundleError.self) { try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(clash.utf8)) }
        let noKid = #"{"keys":[{"kty":"EC","use":"wit-svid","crv":"P-256","x":"\#(ecKey.x!)","y":"\#(ecKey.y!)"}]}"#
        #expect(throws: BundleError.self) { try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(noKid.utf8)) }
    }

    @Test("a bundle round-trips through the SPIFFE format")
    func roundTrip() throws {
        let bundle = SPIFFEBundle(
            trustDomain: trustDomain,
            x509Authorities: [Data([0x30, 0x03, 0x02, 0x01, 0x01])],
            jwtAuthorities: [.init(keyID: "kid-1", key: ecKey)],
            sequenceNumber: 7,
            refreshHint: 300
        )
        let json = bundle.jwksData(format: .spiffe, x509AuthorityKey: fixedKey)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["spiffe_sequence"] as? Int == 7)
        #expect(object["spiffe_refresh_hint"] as? Int == 300)
        let keys = try #require(object["keys"] as? [[String: Any]])
        #expect(keys.count == 2)
        #expect(keys[0]["use"] as? String == "x509-svid")
        #expect(keys[0]["kid"] == nil)
        #expect(keys[0]["kty"] as? String == "EC")
        #expect((keys[0]["x5c"] as? [String])?.count == 1)
        #expect(keys[1]["use"] as? String == "jwt-svid")
        #expect(keys[1]["kid"] as? String == "kid-1")
        let decoded = try SPIFFEBundle(trustDomain: trustDomain, jwksData: json)
        #expect(decoded == bundle)
    }

    @Test("the standard JWKS form carries only JWT keys, without use or spiffe members")
    func standardForm() throws {
        let bundle = SPIFFEBundle(
            trustDomain: trustDomain,
            x509Authorities: [Data([1, 2, 3])],
            jwtAuthorities: [.init(keyID: "k", key: ecKey)],
            sequenceNumber: 3
        )
        let json = bundle.jwksData(format: .standardJWTAuthorities, x509AuthorityKey: fixedKey)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object.keys.sorted() == ["keys"])
        let keys = try #require(object["keys"] as? [[String: Any]])
        #expect(keys.count == 1)
        #expect(keys[0]["use"] == nil)
        #expect(keys[0]["kid"] as? String == "k")
    }

    @Test("keys with an unknown use or key type are skipped, as the spec says")
    func skipsUnknown() throws {
        let json = """
            {"keys":[
              {"kty":"EC","use":"wit-svid","kid":"w","crv":"P-256","x":"AA","y":"AA"},
              {"kty":"OKP","use":"jwt-svid","kid":"o","crv":"Ed25519","x":"AA"},
              {"kty":"EC","kid":"nouse","crv":"P-256","x":"AA","y":"AA"},
              {"kty":"EC","use":"jwt-svid","kid":"good","crv":"P-256","x":"\(ecKey.x!)","y":"\(ecKey.y!)"}
            ]}
            """
        let bundle = try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(json.utf8))
        #expect(bundle.jwtAuthorities.map(\.keyID) == ["good"])
        #expect(bundle.x509Authorities.isEmpty)
    }

    @Test("an empty keys array is a valid bundle that trusts nothing")
    func emptyKeys() throws {
        let bundle = try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(#"{"keys":[]}"#.utf8))
        #expect(bundle.x509Authorities.isEmpty && bundle.jwtAuthorities.isEmpty)
    }

    static let malformed: [(String, String)] = [
        ("", "malformed JSON"),
        ("not json", "malformed JSON"),
        ("[]", "malformed JSON"),
        (#"{"keys":{}}"#, "malformed JSON"),
        (#"{}"#, "missing \"keys\" member"),
        (#"{"keys":[{"use":"jwt-svid"}]}"#, "key 0 has no \"kty\""),
        (#"{"keys":[{"kty":"EC","use":"x509-svid"}]}"#, "exactly one certificate in x5c, found 0"),
        (#"{"keys":[{"kty":"EC","use":"x509-svid","x5c":["AQ==","AQ=="]}]}"#, "found 2"),
        (#"{"keys":[{"kty":"EC","use":"x509-svid","x5c":["!!"]}]}"#, "not base64"),
        (#"{"keys":[{"kty":"EC","use":"jwt-svid","crv":"P-256","x":"AA","y":"AA"}]}"#, "has no \"kid\""),
        (#"{"keys":[{"kty":"EC","use":"jwt-svid","kid":"","crv":"P-256","x":"AA","y":"AA"}]}"#, "has no \"kid\""),
        (#"{"keys":[{"kty":"EC","use":"jwt-svid","kid":"a","crv":"P-256"}]}"#, "needs \"crv\", \"x\" and \"y\""),
        (#"{"keys":[{"kty":"RSA","use":"jwt-svid","kid":"a","n":"+/"}]}"#, "needs \"n\" and \"e\""),
        (
            #"{"keys":[{"kty":"RSA","use":"jwt-svid","kid":"a","n":"AQ","e":"AQ"},{"kty":"RSA","use":"jwt-svid","kid":"a","n":"AQ","e":"AQ"}]}"#,
            "repeats the key ID"
        ),
        (#"{"keys":[],"spiffe_sequence":-1}"#, "malformed JSON"),
    ]

    @Test("malformed bundles are rejected with a message that says why", arguments: malformed)
    func rejects(json: String, fragment: String) {
        do {
            _ = try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }

    @Test("oversized documents are refused before parsing")
    func oversized() {
        let data = Data(count: SPIFFEBundle.maximumDocumentSize + 1)
        #expect(throws: BundleError.self) { try SPIFFEBundle(trustDomain: trustDomain, jwksData: data) }
    }

    @Test("base64url decoding refuses padding and foreign characters")
    func base64URL() {
        #expect(Data(base64URLEncoded: "AQID") == Data([1, 2, 3]))
        #expect(Data(base64URLEncoded: "_-8") == Data([0xFF, 0xEF]))
        #expect(Data(base64URLEncoded: "AQ==") == nil)
        #expect(Data(base64URLEncoded: "A+/A") == nil)
        #expect(Data(base64URLEncoded: "A") == nil)
        #expect(Data([0xFF, 0xEF]).base64URLEncodedString() == "_-8")
    }
}
