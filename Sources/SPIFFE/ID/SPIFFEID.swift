/// A SPIFFE ID, `spiffe://<trust-domain><path>`, validated by every rule of the SPIFFE-ID spec.
///
/// The path is either empty (the trust domain's own ID) or a sequence of `/segment`s of `[A-Za-z0-9._-]`
/// with no empty, `.` or `..` segment and no trailing slash. IDs longer than 2048 bytes are refused: the spec
/// requires accepting up to that length and tells implementations not to make longer ones.
public struct SPIFFEID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable, StringCodable {
    public static let schemePrefix = "spiffe://"
    public static let maximumLength = 2048

    public let trustDomain: TrustDomain
    /// The path with its leading slash, or `""` for the trust domain's own ID.
    public let path: String

    /// Parses the string form, e.g. `spiffe://example.org/ns/shop/sa/api`.
    ///
    /// Everything is measured and split on UTF-8 bytes, never on `Character`s: a combining mark after the scheme's
    /// slash (`spiffe://\u{301}example.org`) forms one grapheme cluster with it, and dropping "9 characters" would
    /// silently swallow the mark and accept an ID that is not the one written.
    public init(_ string: String) throws(SPIFFEIDError) {
        if string.isEmpty { throw .empty }
        let utf8 = string.utf8
        guard utf8.starts(with: Self.schemePrefix.utf8) else { throw .wrongScheme }
        if utf8.count > Self.maximumLength { throw .tooLong(bytes: utf8.count) }
        let rest = Substring(utf8.dropFirst(Self.schemePrefix.utf8.count))
        let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let name = rest[rest.startIndex..<slash]
        try TrustDomain.validate(name: name)
        let path = rest[slash...]
        try Self.validate(path: path)
        self.trustDomain = TrustDomain(validated: name)
        self.path = String(path)
    }

    /// Builds an ID in `trustDomain` from a path such as `/ns/shop/sa/api` (or `""`).
    public init(trustDomain: TrustDomain, path: String) throws(SPIFFEIDError) {
        try Self.validate(path: Substring(path))
        let length = Self.schemePrefix.utf8.count + trustDomain.name.utf8.count + path.utf8.count
        if length > Self.maximumLength { throw .tooLong(bytes: length) }
        self.trustDomain = trustDomain
        self.path = path
    }

    /// The trust domain's own ID, `spiffe://<td>`, which CA certificates may carry.
    public init(trustDomain: TrustDomain) {
        self.trustDomain = trustDomain
        self.path = ""
    }

    public var description: String { Self.schemePrefix + trustDomain.name + path }

    /// Whether this ID belongs to `trustDomain`.
    public func isMember(of trustDomain: TrustDomain) -> Bool { self.trustDomain == trustDomain }

    public static func < (lhs: SPIFFEID, rhs: SPIFFEID) -> Bool { lhs.description < rhs.description }

    static func validate(path: Substring) throws(SPIFFEIDError) {
        if path.isEmpty { return }
        guard path.utf8.first == UInt8(ascii: "/") else { throw .noLeadingSlash }
        var segmentLength = 0
        var segmentIsDots = true
        var dots = 0
        for byte in path.utf8.dropFirst() {
            if byte == UInt8(ascii: "/") {
                try checkSegment(length: segmentLength, dots: segmentIsDots ? dots : 0, isLast: false)
                segmentLength = 0
                segmentIsDots = true
                dots = 0
                continue
            }
            switch byte {
            case UInt8(ascii: "?"): throw .queryNotAllowed
            case UInt8(ascii: "#"): throw .fragmentNotAllowed
            default: break
            }
            guard isPathSegmentByte(byte) else { throw .badPathSegmentCharacter }
            segmentLength += 1
            if byte == UInt8(ascii: ".") { dots += 1 } else { segmentIsDots = false }
        }
        try checkSegment(length: segmentLength, dots: segmentIsDots ? dots : 0, isLast: true)
    }

    private static func checkSegment(length: Int, dots: Int, isLast: Bool) throws(SPIFFEIDError) {
        if length == 0 { throw isLast ? .trailingSlash : .emptySegment }
        if length == dots && (dots == 1 || dots == 2) { throw .dotSegment }
    }

    static func isPathSegmentByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}
