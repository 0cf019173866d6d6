public import Foundation
public import SPIFFE

/// An X509-SVID: a chain whose shape follows the spec, leaf first, and the private key of the leaf.
public struct X509SVID: Sendable {
    public let spiffeID: SPIFFEID
    public let certificates: [Certificate]
    public let privateKey: PrivateKey

    /// Checks the chain by ``X509SVIDVerifier/validate(_:)`` and that `privateKey` belongs to the leaf.
    public init(certificates: [Certificate], privateKey: PrivateKey) throws(CryptoError) {
        self.spiffeID = try X509SVIDVerifier.validate(certificates)
        guard certificates[0].matches(privateKey) else {
            throw CryptoError(.invalidX509SVID, "private key does not match the leaf certificate's public key")
        }
        self.certificates = certificates
        self.privateKey = privateKey
    }

    public var leaf: Certificate { certificates[0] }
    public var expiresAt: Date { leaf.notAfter }

    /// The chain as concatenated DER, the form of `x509_svid` in the Workload API.
    public var concatenatedDER: Data { certificates.reduce(into: Data()) { $0.append($1.derEncoded) } }
}
