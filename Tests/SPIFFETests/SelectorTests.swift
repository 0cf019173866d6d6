import Testing

@testable import SPIFFE

@Suite("Selectors and entry matching")
struct SelectorTests {
    @Test(
        "type:value parses on the first colon only",
        arguments: [
            ("unix:uid:1000", "unix", "uid:1000"),
            ("k8s:pod-label:app:web", "k8s", "pod-label:app:web"),
            ("k8s:ns:payments", "k8s", "ns:payments"),
            ("docker:label:a:b:c", "docker", "label:a:b:c"),
            // A colon followed by a combining mark is one Character, but still the first colon byte.
            ("unix:\u{301}uid:0", "unix", "\u{301}uid:0"),
        ]
    )
    func parses(string: String, type: String, value: String) throws {
        let selector = try Selector(string)
        #expect(selector.type == type)
        #expect(selector.value == value)
        #expect(selector.description == string)
    }

    @Test(
        "malformed selectors are rejected",
        arguments: [
            ("unix", SelectorError.missingSeparator("unix")),
            (":uid:1000", .emptyType),
            ("unix:", .emptyValue(type: "unix")),
            ("", .missingSeparator("")),
        ]
    )
    func rejects(string: String, expected: SelectorError) {
        #expect(throws: expected) { try Selector(string) }
    }

    @Test("an entry matches when all its selectors are among the caller's")
    func matching() throws {
        let id = try SPIFFEID("spiffe://example.org/web")
        let uid = try Selector("unix:uid:1000")
        let gid = try Selector("unix:gid:1000")
        let path = try Selector("unix:path:/usr/bin/web")
        let entry = RegistrationEntry(id: "e1", spiffeID: id, selectors: [uid, gid])
        #expect(entry.matches([uid, gid]))
        #expect(entry.matches([uid, gid, path]))
        #expect(!entry.matches([uid]))
        #expect(!entry.matches([]))
        let empty = RegistrationEntry(id: "e2", spiffeID: id, selectors: [])
        #expect(!empty.matches([uid, gid]), "an entry without selectors must match nobody")
    }
}
