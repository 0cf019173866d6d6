public import Foundation
public import SPIFFE

/// A WIT-SVID (SPIFFE WIT-SVID standard, incubating): a JWT of type `wit+jwt` whose `cnf.jwk` binds the workload's
/// public key to its SPIFFE ID. Not a bearer token: it is presented only with a proof of possession of that key.
public struct WITSVID: Hashable, Sendable, CustomStringConvertible {
    /// The JWS compact serialization. Never log it.
    public let token: String
    public let spiffeID: SPIFFEID
    public let expiresAt: Date
    public let issuedAt: Date?
    /// The `kid` of the authority key that signed it.
    public let keyID: String
    /// `cnf.jwk`: the workload's public key, with its `alg`.
    public let confirmationKey: JSONWebKey
    public let confirmationAlgorithm: JWTAlgorithm
    /// Every claim of the token.
    public let claims: [String: JSONValue]

    public init(
        token: String,
        spiffeID: SPIFFEID,
        expiresAt: Date,
        issuedAt: Date?,
        keyID: String,
        confirmationKey: JSONWebKey,
        confirmationAlgorithm: JWTAlgorithm,
        claims: [String: JSONValue]
    ) {
        self.token = token
        self.spiffeID = spiffeID
        self.expiresAt = expiresAt
        self.issuedAt = issuedAt
        self.keyID = keyID
        self.confirmationKey = confirmationKey
        self.confirmationAlgorithm = confirmationAlgorithm
        self.claims = claims
    }

    /// Shows the identity and expiry, never the token.
    public var description: String { "WITSVID(\(spiffeID), expires: \(expiresAt))" }
}
