import Foundation
import SPIFFE

/// A JWS in compact serialization (`header.claims.signature`), decoded but not yet trusted: the one place JWT-SVIDs
/// and WIT-SVIDs are split, signed, and checked for signature and validity times, so the two token types cannot
/// drift apart on those rules.
struct CompactJWS {
    let header: [String: JSONValue]
    let claims: [String: JSONValue]
    private let segments: [Substring]
    private let token: String

    /// Splits `token` and decodes its header and claims as JSON objects; nothing in them is checked yet.
    init(_ token: String, maximumLength: Int) throws(CryptoError) {
        guard token.utf8.count <= maximumLength else {
            throw Self.invalid("token is \(token.utf8.count) bytes; the limit is \(maximumLength)")
        }
        segments = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(
            Substring.init
        )
        guard segments.count == 3 else {
            throw Self.invalid("token must have three dot-separated segments, found \(segments.count)")
        }
        self.token = token
        header = try Self.object(segments[0], name: "header")
        claims = try Self.object(segments[1], name: "claims")
    }

    /// The header's `alg`, which must be on the SPIFFE allow-list (never `none` or HMAC), and its non-empty `kid`.
    func algorithmAndKeyID() throws(CryptoError) -> (JWTAlgorithm, String) {
        guard let algorithmName = header["alg"]?.stringValue else {
            throw Self.invalid("token header has no algorithm")
        }
        guard let algorithm = JWTAlgorithm(rawValue: algorithmName) else {
            throw Self.invalid("token algorithm \"\(algorithmName)\" is not allowed")
        }
        guard let keyID = header["kid"]?.stringValue, !keyID.isEmpty else {
            throw Self.invalid("token header missing key id")
        }
        return (algorithm, keyID)
    }

    /// The `sub` claim as a SPIFFE ID.
    func subject() throws(CryptoError) -> SPIFFEID {
        guard let subject = claims["sub"]?.stringValue else { throw Self.invalid("token has no subject claim") }
        do {
            return try SPIFFEID(subject)
        } catch {
            throw Self.invalid("token subject is not a valid spiffe id: \(error)")
        }
    }

    /// Checks the signature with the authority `key`, which `algorithm` must fit.
    func verifySignature(key: PublicKey, algorithm: JWTAlgorithm) throws(CryptoError) {
        guard algorithm.fits(key.algorithm) else {
            throw Self.invalid("token algorithm \(algorithm.rawValue) does not fit the \(key.algorithm) authority key")
        }
        guard let signature = Data(base64URLEncoded: segments[2]), !signature.isEmpty else {
            throw Self.invalid("token signature is not base64url")
        }
        let signingInput = Data(token.utf8.prefix(segments[0].utf8.count + 1 + segments[1].utf8.count))
        guard JWSSignature.verify(signature, over: signingInput, key: key, algorithm: algorithm) else {
            throw Self.invalid("token signature does not verify")
        }
    }

    /// `exp` (required, not past) and `nbf` (if present, not future) at `now` with `clockSkew` leeway; returns `exp`.
    func checkValidity(at now: Date, clockSkew: TimeInterval) throws(CryptoError) -> Date {
        guard let exp = claims["exp"]?.numberValue else { throw Self.invalid("token has no expiry claim") }
        guard now.timeIntervalSince1970 <= exp + clockSkew else { throw Self.invalid("token has expired") }
        if let nbf = claims["nbf"] {
            guard let notBefore = nbf.numberValue else { throw Self.invalid("token nbf claim is not a number") }
            guard now.timeIntervalSince1970 + clockSkew >= notBefore else {
                throw Self.invalid("token is not valid yet")
            }
        }
        return Date(timeIntervalSince1970: exp)
    }

    /// `header.claims.signature`, with sorted JSON members so equal inputs give equal tokens.
    static func sign(
        header: [String: JSONValue],
        claims: [String: JSONValue],
        key: PrivateKey,
        algorithm: JWTAlgorithm
    ) throws(CryptoError) -> String {
        let signingInput = try segment(header) + "." + segment(claims)
        let signature = try JWSSignature.sign(Data(signingInput.utf8), key: key, algorithm: algorithm)
        return signingInput + "." + signature.base64URLEncodedString()
    }

    private static func segment(_ object: [String: JSONValue]) throws(CryptoError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(object).base64URLEncodedString()
        } catch {
            throw CryptoError(.issuanceRefused, "claims cannot be encoded as JSON: \(error)")
        }
    }

    private static func object(_ segment: Substring, name: String) throws(CryptoError) -> [String: JSONValue] {
        guard let bytes = [UInt8](base64URLEncoded: segment) else { throw invalid("token \(name) is not base64url") }
        guard let value = try? JSONParser.parse(bytes), let object = value.objectValue else {
            throw invalid("token \(name) is not a JSON object")
        }
        return object
    }

    static func invalid(_ message: String) -> CryptoError { CryptoError(.invalidJWT, message) }
}
