import Foundation
import Testing

@testable import SPIFFE

@Suite("SPIFFE ID parsing")
struct SPIFFEIDTests {
    static let valid: [(String, String, String)] = [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/workload", "example.org", "/workload"),
        ("spiffe://example.org/ns/shop/sa/api", "example.org", "/ns/shop/sa/api"),
        ("spiffe://a-b_c.d9/x", "a-b_c.d9", "/x"),
        ("spiffe://192.168.1.1/x", "192.168.1.1", "/x"),
        ("spiffe://example.org/A-Z_a.z-0.9", "example.org", "/A-Z_a.z-0.9"),
        ("spiffe://example.org/.../x", "example.org", "/.../x"),
        ("spiffe://example.org/.hidden", "example.org", "/.hidden"),
        ("spiffe://example.org/a..b", "example.org", "/a..b"),
    ]

    @Test("valid IDs parse and format back to themselves", arguments: valid)
    func parsesValid(string: String, trustDomain: String, path: String) throws {
        let id = try SPIFFEID(string)
        #expect(id.trustDomain.name == trustDomain)
        #expect(id.path == path)
        #expect(id.description == string)
    }

    static let invalid: [(String, SPIFFEIDError)] = [
        ("", .empty),
        ("example.org/workload", .wrongScheme),
        ("http://example.org/workload", .wrongScheme),
        ("SPIFFE://example.org/workload", .wrongScheme),
        ("spiffe:/example.org", .wrongScheme),
        ("spiffe://", .missingTrustDomain),
        ("spiffe:///path", .missingTrustDomain),
        ("spiffe://Example.org/x", .uppercaseTrustDomain),
        ("spiffe://example.org:8080/x", .trustDomainHasPort),
        ("spiffe://user@example.org/x", .trustDomainHasUserinfo),
        ("spiffe://user:pass@example.org/x", .trustDomainHasPort),
        ("spiffe://example.org?query", .queryNotAllowed),
        ("spiffe://example.org#frag", .fragmentNotAllowed),
        ("spiffe://example.org/x?a=b", .queryNotAllowed),
        ("spiffe://example.org/x#frag", .fragmentNotAllowed),
        ("spiffe://exa%41mple.org/x", .badTrustDomainCharacter),
        ("spiffe://[::1]/x", .badTrustDomainCharacter),
        ("spiffe://exam ple.org", .badTrustDomainCharacter),
        ("spiffe://examplé.org", .badTrustDomainCharacter),
        ("spiffe://example.org/", .trailingSlash),
        ("spiffe://example.org/x/", .trailingSlash),
        ("spiffe://example.org//x", .emptySegment),
        ("spiffe://example.org/x//y", .emptySegment),
        ("spiffe://example.org/.", .dotSegment),
        ("spiffe://example.org/..", .dotSegment),
        ("spiffe://example.org/x/./y", .dotSegment),
        ("spiffe://example.org/x/../y", .dotSegment),
        ("spiffe://example.org/%41", .badPathSegmentCharacter),
        ("spiffe://example.org/a b", .badPathSegmentCharacter),
        ("spiffe://example.org/a:b", .badPathSegmentCharacter),
        ("spiffe://example.org/a~b", .badPathSegmentCharacter),
        ("spiffe://example.org/é", .badPathSegmentCharacter),
        // A combining mark forms one grapheme cluster with the scheme's slash, the path's slash or a letter: parsed
        // on bytes, it is always the invalid character it is.
        ("spiffe://\u{301}example.org/x", .badTrustDomainCharacter),
        ("spiffe://example.org\u{301}/x", .badTrustDomainCharacter),
        ("spiffe://example.org/\u{301}x", .badPathSegmentCharacter),
        ("spiffe:/\u{301}/example.org/x", .wrongScheme),
        ("spiffe://" + String(repeating: "a", count: 256), .trustDomainTooLong(bytes: 256)),
        ("spiffe://example.org/" + String(repeating: "a", count: 2048), .tooLong(bytes: 2069)),
    ]

    @Test("invalid IDs are rejected with a precise error", arguments: invalid)
    func rejectsInvalid(string: String, expected: SPIFFEIDError) {
        #expect(throws: expected) { try SPIFFEID(string) }
    }

    @Test("go-spiffe's messages are kept word for word")
    func messages() {
        #expect(SPIFFEIDError.wrongScheme.description == "scheme is missing or invalid")
        #expect(SPIFFEIDError.missingTrustDomain.description == "trust domain is missing")
        #expect(SPIFFEIDError.dotSegment.description == "path cannot contain dot segments")
        #expect(SPIFFEIDError.emptySegment.description == "path cannot contain empty segments")
        #expect(SPIFFEIDError.trailingSlash.description == "path cannot have a trailing slash")
        #expect(
            SPIFFEIDError.badTrustDomainCharacter.description
                == "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
        )
    }

    @Test("an ID of exactly 2048 bytes is accepted")
    func acceptsMaximumLength() throws {
        let prefix = "spiffe://example.org/"
        let id = try SPIFFEID(prefix + String(repeating: "a", count: 2048 - prefix.utf8.count))
        #expect(id.description.utf8.count == 2048)
    }

    @Test("IDs are built from a trust domain and a checked path")
    func buildsFromParts() throws {
        let trustDomain = try TrustDomain("example.org")
        #expect(try SPIFFEID(trustDomain: trustDomain, path: "/web").description == "spiffe://example.org/web")
        #expect(SPIFFEID(trustDomain: trustDomain).description == "spiffe://example.org")
        #expect(throws: SPIFFEIDError.noLeadingSlash) { try SPIFFEID(trustDomain: trustDomain, path: "web") }
        #expect(throws: SPIFFEIDError.dotSegment) { try SPIFFEID(trustDomain: trustDomain, path: "/..") }
    }

    static let trustDomains: [(String, Result<String, SPIFFEIDError>)] = [
        ("example.org", .success("example.org")),
        ("spiffe://example.org", .success("example.org")),
        ("spiffe://example.org/path", .failure(.trustDomainHasPath)),
        ("", .failure(.missingTrustDomain)),
        ("Example.org", .failure(.uppercaseTrustDomain)),
        ("example.org:443", .failure(.trustDomainHasPort)),
        ("example.org/x", .failure(.badTrustDomainCharacter)),
        (String(repeating: "a", count: 255), .success(String(repeating: "a", count: 255))),
        (String(repeating: "a", count: 256), .failure(.trustDomainTooLong(bytes: 256))),
    ]

    @Test("trust domains parse from a bare name or their own ID", arguments: trustDomains)
    func trustDomain(input: String, expected: Result<String, SPIFFEIDError>) {
        let result = Result { () throws(SPIFFEIDError) -> String in try TrustDomain(input).name }
        #expect(result == expected)
    }

    @Test("trust domain and ID strings round-trip through JSON")
    func codable() throws {
        let id = try SPIFFEID("spiffe://example.org/web")
        let data = try JSONEncoder().encode([id])
        #expect(String(decoding: data, as: UTF8.self) == #"["spiffe:\/\/example.org\/web"]"#)
        #expect(try JSONDecoder().decode([SPIFFEID].self, from: data) == [id])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([SPIFFEID].self, from: Data(#"["spiffe://x/"]"#.utf8))
        }
    }
}
