/// A public JSON Web Key (RFC 7517) as SPIFFE bundles carry it.
///
/// Only the members a SPIFFE bundle uses are kept. The key material is checked for shape here; whether it is a
/// usable key (a point on the curve, a sane modulus) is for `SPIFFECrypto` to decide when it builds the key.
public struct JSONWebKey: Hashable, Sendable, Codable {
    /// `EC` or `RSA`.
    public var keyType: String
    /// `x509-svid`, `jwt-svid`; absent in a standard JWKS.
    public var use: String?
    public var keyID: String?
    /// `P-256`, `P-384`, `P-521` for EC keys.
    public var curve: String?
    /// EC coordinates, base64url.
    public var x: String?
    public var y: String?
    /// RSA modulus and exponent, base64url.
    public var modulus: String?
    public var exponent: String?
    /// Standard base64 DER certificates; an `x509-svid` key has exactly one.
    public var certificateChain: [String]?

    public init(
        keyType: String,
        use: String? = nil,
        keyID: String? = nil,
        curve: String? = nil,
        x: String? = nil,
        y: String? = nil,
        modulus: String? = nil,
        exponent: String? = nil,
        certificateChain: [String]? = nil
    ) {
        self.keyType = keyType
        self.use = use
        self.keyID = keyID
        self.curve = curve
        self.x = x
        self.y = y
        self.modulus = modulus
        self.exponent = exponent
        self.certificateChain = certificateChain
    }

    enum CodingKeys: String, CodingKey {
        case keyType = "kty"
        case use
        case keyID = "kid"
        case curve = "crv"
        case x, y
        case modulus = "n"
        case exponent = "e"
        case certificateChain = "x5c"
    }

    /// The same key without `use`, `kid` and `x5c`: the key material alone, for comparing keys.
    public var withoutMetadata: JSONWebKey {
        var copy = self
        copy.use = nil
        copy.keyID = nil
        copy.certificateChain = nil
        return copy
    }
}
