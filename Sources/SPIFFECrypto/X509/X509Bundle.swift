public import Foundation
public import SPIFFE

/// A trust domain's X.509 authorities, parsed: what SVID chains are verified against.
public struct X509Bundle: Hashable, Sendable {
    public let trustDomain: TrustDomain
    public let authorities: [Certificate]

    public init(trustDomain: TrustDomain, authorities: [Certificate]) {
        self.trustDomain = trustDomain
        self.authorities = authorities
    }

    /// Parses the X.509 authorities of a SPIFFE bundle.
    public init(_ bundle: SPIFFEBundle) throws(CryptoError) {
        var authorities: [Certificate] = []
        for (index, der) in bundle.x509Authorities.enumerated() {
            do {
                authorities.append(try Certificate(derEncoded: der))
            } catch {
                throw CryptoError(error.code, "x509 authority \(index) of \(bundle.trustDomain): \(error.message)")
            }
        }
        self.init(trustDomain: bundle.trustDomain, authorities: authorities)
    }
}

extension SPIFFEBundle {
    /// The bundle as JSON, with each X.509 authority's public key written beside its `x5c` as consumers expect.
    public func jwksData(format: JWKSFormat = .spiffe) throws(CryptoError) -> Data {
        do {
            return try jwksData(format: format) { der in try Certificate(derEncoded: der).publicKey.jwk }
        } catch let error as CryptoError {
            throw error
        } catch {
            throw CryptoError(.invalidCertificate, "\(error)")
        }
    }
}
