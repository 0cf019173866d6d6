public import Foundation

extension PrivateKey {
    /// A JWS-style signature over `data` (hash, then sign; ECDSA as fixed-width r‖s). Proof-of-possession protocols
    /// such as SPIRE's x509pop use it: ES256 is ECDSA over SHA-256, PS256 is RSA-PSS over SHA-256.
    public func signature(over data: Data, algorithm: JWTAlgorithm) throws(CryptoError) -> Data {
        try JWSSignature.sign(data, key: self, algorithm: algorithm)
    }
}

extension PublicKey {
    /// Whether `signature` (as ``PrivateKey/signature(over:algorithm:)`` makes it) is valid over `data`.
    public func isValidSignature(_ signature: Data, over data: Data, algorithm: JWTAlgorithm) -> Bool {
        JWSSignature.verify(signature, over: data, key: self, algorithm: algorithm)
    }
}
