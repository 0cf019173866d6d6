package import Foundation
package import SPIFFE
package import SPIFFECrypto

/// An X509-SVID as the cache keeps it: its bytes, not OpenSSL objects.
///
/// OpenSSL's parsed certificate and key cost several kilobytes each, while a response needs only the DER (or its
/// PEM); keeping bytes makes a node with ten thousand identities small, and encoding for responses trivial. The
/// chain is one buffer, laid out as the Workload API sends it, so a response copies nothing.
package struct IssuedSVID: Hashable, Sendable, CustomStringConvertible {
    package let spiffeID: SPIFFEID
    /// The certificates' DER laid end to end, leaf first.
    package let chainDER: Data
    /// The private key as PKCS#8 DER. Secret: never logged.
    package let privateKeyDER: Data
    package let notBefore: Date
    package let expiresAt: Date

    /// Takes the bytes out of a freshly minted SVID. `spiffeID` is the entry's (already checked equal to the
    /// certificate's), so the cache keeps one copy of its strings instead of one per entry and one per SVID.
    package init(_ svid: X509SVID, spiffeID: SPIFFEID? = nil) throws(CryptoError) {
        self.spiffeID = spiffeID ?? svid.spiffeID
        var chain = Data()
        chain.reserveCapacity(svid.certificates.reduce(0) { $0 + $1.derEncoded.count })
        for certificate in svid.certificates { chain.append(certificate.derEncoded) }
        chainDER = chain
        privateKeyDER = try svid.privateKey.pkcs8DER
        notBefore = svid.leaf.notBefore
        expiresAt = svid.expiresAt
    }

    /// Each certificate in PEM, as SDS sends the chain.
    package var chainPEM: String {
        Self.elementRanges(chainDER).map { PEM.encode(label: "CERTIFICATE", der: chainDER[$0]) }.joined()
    }

    package var privateKeyPEM: String { PEM.encode(label: "PRIVATE KEY", der: privateKeyDER) }

    /// Shows the identity and expiry, never the key.
    package var description: String { "IssuedSVID(\(spiffeID), expires \(expiresAt))" }

    /// The byte ranges of the DER elements laid end to end in `der` (tag, then a short- or long-form length). The
    /// chain was encoded by OpenSSL, so it is well formed; were it not, the rest is returned as one range.
    static func elementRanges(_ der: Data) -> [Range<Data.Index>] {
        var ranges: [Range<Data.Index>] = []
        var start = der.startIndex
        while start < der.endIndex {
            guard let length = elementLength(der, at: start), length <= der.endIndex - start else {
                ranges.append(start..<der.endIndex)
                break
            }
            ranges.append(start..<start + length)
            start += length
        }
        return ranges
    }

    /// The whole length (header included) of the DER element starting at `start`, nil when the header is cut short.
    private static func elementLength(_ der: Data, at start: Data.Index) -> Int? {
        guard der.endIndex - start >= 2 else { return nil }
        let first = der[start + 1]
        guard first & 0x80 != 0 else { return 2 + Int(first) }
        let count = Int(first & 0x7f)
        guard (1...4).contains(count), der.endIndex - start >= 2 + count else { return nil }
        let length = der[(start + 2)..<(start + 2 + count)].reduce(0) { $0 << 8 | Int($1) }
        return 2 + count + length
    }
}
