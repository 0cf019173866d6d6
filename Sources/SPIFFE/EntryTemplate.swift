/// A registration entry whose SPIFFE ID is a template: `spiffe://cluster.local/ns/{k8s:ns}/sa/{k8s:sa}`. Each
/// `{placeholder}` names a selector kind (`k8s:ns`, or a keyed one such as `k8s:pod-label:app`) and is filled from
/// the caller's selectors, so one entry gives every matching caller its own identity.
///
/// The entry's `selectors` still say who may use it. A caller they match must also carry exactly one value of each
/// placeholder's kind, and each value must be made only of the characters a SPIFFE ID path allows
/// (`[A-Za-z0-9._-]`): values are checked, never escaped, so `../x` or `a/b` can never move an identity elsewhere in
/// the path. The instance's selectors are the entry's plus the filled ones, so it matches exactly the callers that
/// gave those values.
public struct EntryTemplate: Hashable, Sendable {
    /// One piece of the path: literal text, or a placeholder's selector kind (`k8s:ns`).
    public enum Part: Hashable, Sendable {
        case literal(String)
        case placeholder(String)
    }

    /// The template as written.
    public let text: String
    public let trustDomain: TrustDomain
    /// The path after the trust domain, in pieces.
    public let parts: [Part]
    /// Who may use it; an instance adds the filled selectors.
    public var selectors: Set<Selector>
    /// The instances' other properties (their `id`, `spiffeID` and `selectors` are set per instance).
    public var x509SVIDTTL: Duration?
    public var jwtSVIDTTL: Duration?
    public var witSVIDTTL: Duration?
    public var dnsNames: [String]
    public var hint: String
    public var federatesWith: [TrustDomain]

    /// Whether `text` is meant as a template (it has a brace), as opposed to a plain SPIFFE ID.
    public static func isTemplate(_ text: String) -> Bool {
        text.utf8.contains(UInt8(ascii: "{")) || text.utf8.contains(UInt8(ascii: "}"))
    }

    /// Parses the template text; the trust domain must be literal and every literal part valid in a SPIFFE ID.
    public init(
        _ text: String,
        selectors: Set<Selector>,
        x509SVIDTTL: Duration? = nil,
        jwtSVIDTTL: Duration? = nil,
        witSVIDTTL: Duration? = nil,
        dnsNames: [String] = [],
        hint: String = "",
        federatesWith: [TrustDomain] = []
    ) throws(EntryTemplateError) {
        guard text.hasPrefix(SPIFFEID.schemePrefix) else { throw .invalid("must start with spiffe://") }
        let rest = text.dropFirst(SPIFFEID.schemePrefix.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let domain = rest[..<slash]
        guard !Self.isTemplate(String(domain)) else {
            throw .invalid("placeholders may fill the path only, not the trust domain")
        }
        do {
            trustDomain = try TrustDomain(String(domain))
        } catch {
            throw .invalid("\(error)")
        }
        var parts: [Part] = []
        var literal = ""
        var path = rest[slash...]
        while let first = path.first {
            path = path.dropFirst()
            switch first {
            case "{":
                guard let close = path.firstIndex(of: "}") else { throw .invalid("a { is not closed") }
                let name = String(path[..<close])
                guard Self.isPlaceholderName(name) else {
                    throw .invalid("{\(name.prefix(80))} is not a selector kind such as {k8s:ns}")
                }
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                parts.append(.placeholder(name))
                path = path[path.index(after: close)...]
            case "}":
                throw .invalid("a } is not opened")
            default:
                literal.append(first)
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        guard parts.contains(where: { if case .placeholder = $0 { true } else { false } }) else {
            throw .invalid("has no placeholder")
        }
        // The literal parts must be valid as they stand: check the path with every placeholder as one letter.
        let sample = parts.map { part -> String in
            switch part {
            case .literal(let text): text
            case .placeholder: "x"
            }
        }.joined()
        do {
            _ = try SPIFFEID(trustDomain: trustDomain, path: sample)
        } catch {
            throw .invalid("with its placeholders filled it is not a valid SPIFFE ID: \(error)")
        }
        self.text = text
        self.parts = parts
        self.selectors = selectors
        self.x509SVIDTTL = x509SVIDTTL
        self.jwtSVIDTTL = jwtSVIDTTL
        self.witSVIDTTL = witSVIDTTL
        self.dnsNames = dnsNames
        self.hint = hint
        self.federatesWith = federatesWith
    }

    /// The placeholders, in order (a kind may appear more than once).
    public var placeholders: [String] {
        parts.compactMap { if case .placeholder(let name) = $0 { name } else { nil } }
    }

    /// The instance for a caller with `callerSelectors`: its SPIFFE ID and selectors, or nil when the template does
    /// not apply to that caller (its selectors do not match, a placeholder's kind has no value or several, or a value
    /// is not fit for a SPIFFE ID path). The returned entry's `id` and `revision` are left for the upstream to set.
    public func instance(for callerSelectors: Set<Selector>) -> RegistrationEntry? {
        guard !selectors.isEmpty, selectors.isSubset(of: callerSelectors) else { return nil }
        var path = ""
        var filled = selectors
        for part in parts {
            switch part {
            case .literal(let text): path += text
            case .placeholder(let name):
                guard let (selector, value) = Self.value(of: name, in: callerSelectors),
                    value.utf8.allSatisfy(Self.isPathByte)
                else { return nil }
                filled.insert(selector)
                path += value
            }
        }
        guard let id = try? SPIFFEID(trustDomain: trustDomain, path: path) else { return nil }
        return RegistrationEntry(
            id: "",
            spiffeID: id,
            selectors: filled,
            x509SVIDTTL: x509SVIDTTL,
            jwtSVIDTTL: jwtSVIDTTL,
            witSVIDTTL: witSVIDTTL,
            dnsNames: dnsNames,
            hint: hint,
            federatesWith: federatesWith
        )
    }

    /// The one selector of kind `name` (`k8s:ns` → `k8s:ns:<value>`) among `selectors`, and its value; nil when
    /// there is none or more than one.
    static func value(of name: String, in selectors: Set<Selector>) -> (Selector, String)? {
        guard let colon = name.firstIndex(of: ":") else { return nil }
        let type = name[..<colon]
        let prefix = name[name.index(after: colon)...] + ":"
        var found: (Selector, String)? = nil
        for selector in selectors where selector.type == type && selector.value.hasPrefix(prefix) {
            guard found == nil else { return nil }
            found = (selector, String(selector.value.dropFirst(prefix.count)))
        }
        guard let found, !found.1.isEmpty else { return nil }
        return found
    }

    /// `type:kind` or `type:kind:key`, each part non-empty and without braces.
    static func isPlaceholderName(_ name: String) -> Bool {
        let parts = name.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.allSatisfy({ !$0.isEmpty }) else { return false }
        return name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "{") }
    }

    /// A byte a SPIFFE ID path segment may hold.
    static func isPathByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}

/// Why a template cannot be used.
public enum EntryTemplateError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let reason): "template \(reason)"
        }
    }
}
