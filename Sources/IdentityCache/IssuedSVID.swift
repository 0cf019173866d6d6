public import Foundation
public import SPIFFE
public import SPIFFECrypto

/// An X509-SVID as the cache keeps it: its bytes, not OpenSSL objects.
///
/// OpenSSL's parsed certificate and key cost several kilobytes each, while a response needs only the DER (or its
/// PEM); keeping bytes makes a node with ten thousand identities small, and encoding for responses trivial.
public struct IssuedSVID: Hashable, Sendable, CustomStringConvertible {
    public let spiffeID: SPIFFEID
    /// Each certificate's DER, leaf first.
    public let certificatesDER: [Data]
    /// The private key as PKCS#8 DER. Secret: never logged.
    public let privateKeyDER: Data
    public let notBefore: Date
    public let expiresAt: Date
    public let serialNumberHex: String

    /// Takes the bytes out of a freshly minted SVID.
    public init(_ svid: X509SVID) throws(CryptoError) {
        spiffeID = svid.spiffeID
        certificatesDER = svid.certificates.map(\.derEncoded)
        privateKeyDER = try svid.privateKey.pkcs8DER
        notBefore = svid.leaf.notBefore
        expiresAt = svid.expiresAt
        serialNumberHex = svid.leaf.serialNumberHex
    }

    /// The chain concatenated, as the Workload API sends it.
    public var chainDER: Data { certificatesDER.reduce(into: Data()) { $0.append($1) } }

    public var chainPEM: String { certificatesDER.map { PEM.encode(label: "CERTIFICATE", der: $0) }.joined() }

    public var privateKeyPEM: String { PEM.encode(label: "PRIVATE KEY", der: privateKeyDER) }

    /// Shows the identity and expiry, never the key.
    public var description: String { "IssuedSVID(\(spiffeID), serial \(serialNumberHex), expires \(expiresAt))" }
}
