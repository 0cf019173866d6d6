import Foundation
import SPIFFE
import SPIFFECrypto

/// Reads a foreign trust domain's bundle from a file: a SPIFFE bundle (JWKS) or PEM certificates.
enum FederationBundleLoader {
    static func load(path: String, trustDomain: TrustDomain) throws -> SPIFFEBundle {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError("cannot read \(path)")
        }
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("-----BEGIN") {
            let certificates = try Certificate.chain(pemEncoded: text)
            return SPIFFEBundle(trustDomain: trustDomain, x509Authorities: certificates.map(\.derEncoded))
        }
        let bundle = try SPIFFEBundle(trustDomain: trustDomain, jwksData: data)
        _ = try X509Bundle(bundle)
        return bundle
    }
}
