/// Why a string is not a valid SPIFFE ID or trust domain.
///
/// The messages of the common cases are go-spiffe's, word for word, so spec fixtures and logs compare across
/// implementations; the extra cases name URI parts (port, userinfo, query, fragment) that go-spiffe reports only as
/// bad characters.
public enum SPIFFEIDError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case wrongScheme
    case missingTrustDomain
    case badTrustDomainCharacter
    case uppercaseTrustDomain
    case trustDomainHasPort
    case trustDomainHasUserinfo
    case trustDomainTooLong(bytes: Int)
    case trustDomainHasPath
    case queryNotAllowed
    case fragmentNotAllowed
    case badPathSegmentCharacter
    case dotSegment
    case emptySegment
    case trailingSlash
    case noLeadingSlash
    case tooLong(bytes: Int)

    public var description: String {
        switch self {
        case .empty: "cannot be empty"
        case .wrongScheme: "scheme is missing or invalid"
        case .missingTrustDomain: "trust domain is missing"
        case .badTrustDomainCharacter:
            "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
        case .uppercaseTrustDomain: "trust domain must be lowercase"
        case .trustDomainHasPort: "trust domain cannot contain a port"
        case .trustDomainHasUserinfo: "trust domain cannot contain userinfo"
        case .trustDomainTooLong(let bytes):
            "trust domain is \(bytes) bytes long; the limit is \(TrustDomain.maximumLength)"
        case .trustDomainHasPath: "a trust domain cannot have a path"
        case .queryNotAllowed: "query is not allowed"
        case .fragmentNotAllowed: "fragment is not allowed"
        case .badPathSegmentCharacter:
            "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
        case .dotSegment: "path cannot contain dot segments"
        case .emptySegment: "path cannot contain empty segments"
        case .trailingSlash: "path cannot have a trailing slash"
        case .noLeadingSlash: "path must have a leading slash"
        case .tooLong(let bytes): "spiffe id is \(bytes) bytes long; the limit is \(SPIFFEID.maximumLength)"
        }
    }
}
