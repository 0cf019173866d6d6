public import Foundation
public import SPIFFE

/// A JWT-SVID: the compact token and what it says, either as minted or as validated.
public struct JWTSVID: Hashable, Sendable, CustomStringConvertible {
    /// The JWS compact serialization. A bearer credential: never log it.
    public let token: String
    public let spiffeID: SPIFFEID
    public let audience: [String]
    public let expiresAt: Date
    public let issuedAt: Date?
    /// Every claim of the token, `sub`, `aud` and `exp` included.
    public let claims: [String: JSONValue]

    public init(
        token: String,
        spiffeID: SPIFFEID,
        audience: [String],
        expiresAt: Date,
        issuedAt: Date?,
        claims: [String: JSONValue]
    ) {
        self.token = token
        self.spiffeID = spiffeID
        self.audience = audience
        self.expiresAt = expiresAt
        self.issuedAt = issuedAt
        self.claims = claims
    }

    /// Shows the identity and audience, never the token.
    public var description: String { "JWTSVID(\(spiffeID), audience: \(audience), expires: \(expiresAt))" }
}
