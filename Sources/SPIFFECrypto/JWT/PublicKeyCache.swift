import SPIFFE
import Synchronization

/// Public keys built from JWKs, keyed by the JWK itself (so a rotated bundle can never reuse a stale key), bounded
/// so that a bundle flood cannot grow it without limit.
final class PublicKeyCache: Sendable {
    private let keys = Mutex<[JSONWebKey: PublicKey]>([:])
    let capacity: Int

    init(capacity: Int = 256) {
        self.capacity = capacity
    }

    func key(for jwk: JSONWebKey) throws(CryptoError) -> PublicKey {
        if let key = keys.withLock({ $0[jwk] }) { return key }
        let key = try PublicKey(jwk: jwk)
        keys.withLock { keys in
            if keys.count >= capacity { keys.removeAll(keepingCapacity: true) }
            keys[jwk] = key
        }
        return key
    }
}
