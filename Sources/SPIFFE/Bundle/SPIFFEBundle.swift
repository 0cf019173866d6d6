public import Foundation

/// The trust anchors of one trust domain: X.509 authorities for X509-SVIDs, JWT authorities (by key ID) for JWT-SVIDs
/// and WIT authorities (by key ID) for WIT-SVIDs, with the bundle's sequence number and refresh hint.
public struct SPIFFEBundle: Hashable, Sendable {
    /// A JWT-SVID or WIT-SVID signing key published under its key ID.
    public struct JWTAuthority: Hashable, Sendable {
        public var keyID: String
        public var key: JSONWebKey

        public init(keyID: String, key: JSONWebKey) {
            self.keyID = keyID
            self.key = key
        }
    }

    public var trustDomain: TrustDomain
    /// DER-encoded CA certificates, in publication order.
    public var x509Authorities: [Data]
    public var jwtAuthorities: [JWTAuthority]
    /// WIT-SVID signing keys (`use` `wit-svid`); none means the trust domain does not issue WIT-SVIDs.
    public var witAuthorities: [JWTAuthority]
    /// Increases with every change (`spiffe_sequence`).
    public var sequenceNumber: UInt64?
    /// How often consumers should refresh, in seconds (`spiffe_refresh_hint`).
    public var refreshHint: Int64?

    public init(
        trustDomain: TrustDomain,
        x509Authorities: [Data] = [],
        jwtAuthorities: [JWTAuthority] = [],
        witAuthorities: [JWTAuthority] = [],
        sequenceNumber: UInt64? = nil,
        refreshHint: Int64? = nil
    ) {
        self.trustDomain = trustDomain
        self.x509Authorities = x509Authorities
        self.jwtAuthorities = jwtAuthorities
        self.witAuthorities = witAuthorities
        self.sequenceNumber = sequenceNumber
        self.refreshHint = refreshHint
    }

    /// The JWT authority published under `keyID`, if any.
    public func jwtAuthority(keyID: String) -> JSONWebKey? {
        jwtAuthorities.first { $0.keyID == keyID }?.key
    }

    /// The WIT authority published under `keyID`, if any.
    public func witAuthority(keyID: String) -> JSONWebKey? {
        witAuthorities.first { $0.keyID == keyID }?.key
    }

    /// The X.509 authorities concatenated as DER, the form the Workload API sends.
    public var concatenatedX509Authorities: Data {
        x509Authorities.reduce(into: Data()) { $0.append($1) }
    }
}
