/// A SPIFFE trust domain: the lowercase authority part of a SPIFFE ID, such as `example.org`.
///
/// Construction validates every rule of the SPIFFE-ID spec, so holding a `TrustDomain` proves the name is valid.
public struct TrustDomain: Hashable, Comparable, Sendable, CustomStringConvertible, Codable, StringCodable {
    /// The spec caps a trust domain at 255 bytes (the DNS name limit).
    public static let maximumLength = 255

    /// The bare name, e.g. `example.org`.
    public let name: String

    /// Parses a bare name (`example.org`) or the trust domain's own ID (`spiffe://example.org`).
    public init(_ nameOrID: String) throws(SPIFFEIDError) {
        if nameOrID.utf8.starts(with: SPIFFEID.schemePrefix.utf8) {
            let id = try SPIFFEID(nameOrID)
            guard id.path.isEmpty else { throw .trustDomainHasPath }
            self = id.trustDomain
            return
        }
        if nameOrID.isEmpty { throw .missingTrustDomain }
        try Self.validate(name: Substring(nameOrID))
        self.name = nameOrID
    }

    /// Builds from a name already checked by ``validate(name:)``.
    init(validated name: Substring) {
        self.name = String(name)
    }

    /// `spiffe://<name>`: how the Workload API keys bundles and how CA certificates name their trust domain.
    public var idString: String { SPIFFEID.schemePrefix + name }

    public var description: String { name }

    public static func < (lhs: TrustDomain, rhs: TrustDomain) -> Bool { lhs.name < rhs.name }

    /// Checks the trust domain characters: `[a-z0-9._-]`, with a precise error for the URI parts that are not allowed.
    static func validate(name: Substring) throws(SPIFFEIDError) {
        if name.isEmpty { throw .missingTrustDomain }
        for byte in name.utf8 where !isTrustDomainByte(byte) {
            switch byte {
            case UInt8(ascii: ":"): throw .trustDomainHasPort
            case UInt8(ascii: "@"): throw .trustDomainHasUserinfo
            case UInt8(ascii: "?"): throw .queryNotAllowed
            case UInt8(ascii: "#"): throw .fragmentNotAllowed
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): throw .uppercaseTrustDomain
            default: throw .badTrustDomainCharacter
            }
        }
        if name.utf8.count > maximumLength { throw .trustDomainTooLong(bytes: name.utf8.count) }
    }

    static func isTrustDomainByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}
