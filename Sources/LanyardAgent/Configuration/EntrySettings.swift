import Foundation
import SPIFFE
import SPIFFECrypto

/// `[[entries]]`: registrations for the embedded CA, each with a stable ID and a revision that changes with it. An
/// entry whose `spiffe_id` has `{placeholders}` is a template (``EntryTemplate``), instantiated per caller.
enum EntrySettings {
    static func read(
        _ sections: [SectionReader],
        trustDomain: TrustDomain,
        federated: [TrustDomain: SPIFFEBundle],
        enabledAttestors: Set<String> = ["unix"]
    ) -> (entries: [RegistrationEntry], templates: [EntryTemplate]) {
        var entries: [RegistrationEntry] = []
        var templates: [EntryTemplate] = []
        var ids: Set<String> = []
        for section in sections {
            defer { section.finish() }
            var spiffeID: SPIFFEID? = nil
            var templateText: String? = nil
            if let text = section.string("spiffe_id"), EntryTemplate.isTemplate(text) {
                templateText = text
            } else if let text = section.string("spiffe_id") {
                do {
                    let id = try SPIFFEID(text)
                    if id.trustDomain != trustDomain {
                        section.problem("spiffe_id", "\(id) is not in trust domain \(trustDomain)")
                    } else if id.path.isEmpty {
                        section.problem("spiffe_id", "a workload identity needs a path")
                    } else {
                        spiffeID = id
                    }
                } catch {
                    section.problem("spiffe_id", "\(error)")
                }
            } else if !section.has("spiffe_id") {
                section.problem("spiffe_id", "is required")
            }
            var selectors: Set<Selector> = []
            for text in section.strings("selectors") ?? [] {
                do { selectors.insert(try Selector(text)) } catch { section.problem("selectors", "\(error)") }
            }
            if selectors.isEmpty { section.problem("selectors", "needs at least one selector") }
            let x509TTL = section.duration("x509_svid_ttl")
            let jwtTTL = section.duration("jwt_svid_ttl")
            let witTTL = section.duration("wit_svid_ttl", allowZero: true)
            let dnsNames = section.strings("dns_names") ?? []
            let hint = section.string("hint", default: "")
            if hint.utf8.count > 1024 { section.problem("hint", "is longer than 1024 bytes") }
            var federatesWith: [TrustDomain] = []
            for name in section.strings("federates_with") ?? [] {
                do {
                    let domain = try TrustDomain(name)
                    if federated[domain] == nil {
                        section.problem("federates_with", "no [[federation]] bundle is configured for \(domain)")
                    }
                    federatesWith.append(domain)
                } catch {
                    section.problem("federates_with", "\(error)")
                }
            }
            if let templateText {
                do {
                    let template = try EntryTemplate(
                        templateText,
                        selectors: selectors,
                        x509SVIDTTL: x509TTL,
                        jwtSVIDTTL: jwtTTL,
                        witSVIDTTL: witTTL,
                        dnsNames: dnsNames,
                        hint: hint,
                        federatesWith: federatesWith
                    )
                    if template.trustDomain != trustDomain {
                        section.problem("spiffe_id", "\(templateText) is not in trust domain \(trustDomain)")
                    }
                    for placeholder in Set(template.placeholders).sorted() {
                        if let problem = TemplatePlaceholders.problem(with: placeholder, enabled: enabledAttestors) {
                            section.problem("spiffe_id", problem)
                        }
                    }
                    if !ids.insert(
                        "template\n" + templateText + "\n"
                            + selectors.map(\.description).sorted().joined(separator: "\n")
                    ).inserted {
                        section.problem("spiffe_id", "the same template and selectors are already in another entry")
                    }
                    templates.append(template)
                } catch {
                    section.problem("spiffe_id", "\(error)")
                }
                continue
            }
            guard let spiffeID else { continue }
            var entry = RegistrationEntry(
                id: "",
                spiffeID: spiffeID,
                selectors: selectors,
                x509SVIDTTL: x509TTL,
                jwtSVIDTTL: jwtTTL,
                witSVIDTTL: witTTL,
                dnsNames: dnsNames,
                hint: hint,
                federatesWith: federatesWith
            )
            entry.id = entryID(entry)
            entry.revision = revision(entry)
            if !ids.insert(entry.id).inserted {
                section.problem("spiffe_id", "the same identity and selectors are already in another entry")
            }
            entries.append(entry)
        }
        return (entries, templates)
    }

    /// An instance of a template (``EntryTemplate/instance(for:)``) with its stable ID and revision, derived like a
    /// configured entry's, so the same caller gets the same instance across restarts and reloads.
    static func identified(_ instance: RegistrationEntry) -> RegistrationEntry {
        var entry = instance
        entry.id = entryID(entry)
        entry.revision = revision(entry)
        return entry
    }

    /// A stable ID from the identity and selectors, so an entry keeps its ID across restarts and reloads.
    static func entryID(_ entry: RegistrationEntry) -> String {
        let key =
            entry.spiffeID.description + "\n" + entry.selectors.map(\.description).sorted().joined(separator: "\n")
        let hex = Array("0123456789abcdef".utf8)
        var id = Array("local-".utf8)
        for byte in Digest.sha256(Data(key.utf8)).prefix(8) {
            id += [hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
        }
        return String(decoding: id, as: UTF8.self)
    }

    /// Changes whenever anything in the entry changes, so the cache re-mints.
    static func revision(_ entry: RegistrationEntry) -> Int64 {
        let text = [
            entry.id, entry.dnsNames.joined(separator: ","), entry.hint,
            entry.federatesWith.map(\.name).joined(separator: ","),
            "\(String(describing: entry.x509SVIDTTL))", "\(String(describing: entry.jwtSVIDTTL))",
            "\(String(describing: entry.witSVIDTTL))",
        ].joined(separator: "\n")
        let digest = Digest.sha256(Data(text.utf8))
        return digest.prefix(8).reduce(Int64(0)) { ($0 << 8) | Int64($1) } & Int64.max
    }
}
