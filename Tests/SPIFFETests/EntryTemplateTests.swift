import Testing

@testable import SPIFFE

@Suite("Templated entries: parsing and filling from a caller's selectors")
struct EntryTemplateTests {
    static let mesh = try! Selector("k8s:pod-label:mesh:on")

    static func selectors(_ texts: String...) -> Set<Selector> {
        Set(texts.map { try! Selector($0) })
    }

    @Test("each placeholder is filled from the caller's one selector of its kind; the instance matches only that")
    func fills() throws {
        let template = try EntryTemplate("spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}", selectors: [Self.mesh])
        #expect(template.placeholders == ["k8s:ns", "k8s:sa"])
        let caller = Self.selectors("k8s:pod-label:mesh:on", "k8s:ns:shop", "k8s:sa:api", "unix:uid:0")
        let instance = try #require(template.instance(for: caller))
        #expect(instance.spiffeID.description == "spiffe://example.org/ns/shop/sa/api")
        #expect(instance.selectors == Self.selectors("k8s:pod-label:mesh:on", "k8s:ns:shop", "k8s:sa:api"))
        #expect(instance.matches(caller))
        #expect(!instance.matches(Self.selectors("k8s:pod-label:mesh:on", "k8s:ns:shop", "k8s:sa:web")))

        let keyed = try EntryTemplate(
            "spiffe://example.org/app/{k8s:pod-label:app}-{systemd:instance}",
            selectors: [Self.mesh]
        )
        let worker = Self.selectors("k8s:pod-label:mesh:on", "k8s:pod-label:app:queue", "systemd:instance:3")
        #expect(keyed.instance(for: worker)?.spiffeID.description == "spiffe://example.org/app/queue-3")
    }

    @Test("no instance: selectors not matched, a kind missing or repeated, or a value unfit for a path")
    func refuses() throws {
        let template = try EntryTemplate("spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}", selectors: [Self.mesh])
        #expect(template.instance(for: Self.selectors("k8s:ns:shop", "k8s:sa:api")) == nil)
        #expect(template.instance(for: Self.selectors("k8s:pod-label:mesh:on", "k8s:ns:shop")) == nil)
        #expect(
            template.instance(for: Self.selectors("k8s:pod-label:mesh:on", "k8s:ns:a", "k8s:ns:b", "k8s:sa:api")) == nil
        )
        for value in ["..", ".", "a/b", "../../admin", "a b", "a%2fb", "ä", "a:b"] {
            let caller = Set([Self.mesh, try Selector(type: "k8s", value: "ns:\(value)"), try Selector("k8s:sa:api")])
            #expect(template.instance(for: caller) == nil, "\(value)")
        }
        let whole = try EntryTemplate("spiffe://example.org/{unix:user}", selectors: [try Selector("unix:gid:100")])
        #expect(whole.instance(for: Self.selectors("unix:gid:100", "unix:user:..")) == nil)
        #expect(whole.instance(for: Self.selectors("unix:gid:100", "unix:user:alice"))?.spiffeID.path == "/alice")
    }

    @Test(
        "malformed templates are refused with the reason",
        arguments: [
            ("spiffe://{k8s:ns}.example.org/x", "trust domain"),
            ("spiffe://example.org/ns/{k8s:ns", "not closed"),
            ("spiffe://example.org/ns/k8s:ns}", "not opened"),
            ("spiffe://example.org/ns/{}", "not a selector kind"),
            ("spiffe://example.org/ns/{k8s}", "not a selector kind"),
            ("spiffe://example.org/ns/{k8s:}", "not a selector kind"),
            ("spiffe://example.org/ns//{k8s:ns}", "not a valid SPIFFE ID"),
            ("spiffe://example.org/ns/{k8s:ns}/", "not a valid SPIFFE ID"),
            ("spiffe://example.org/a b/{k8s:ns}", "not a valid SPIFFE ID"),
            ("https://example.org/{k8s:ns}", "spiffe://"),
        ]
    )
    func malformed(text: String, reason: String) {
        do {
            _ = try EntryTemplate(text, selectors: [Self.mesh])
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(reason), "\(error)")
        }
    }
}
