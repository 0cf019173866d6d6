package import Foundation
package import SPIFFE
package import SPIFFECrypto
import Synchronization

/// JWT-SVIDs already minted, by SPIFFE ID and audience set, reused until half their lifetime.
///
/// Callers choose the audiences, and every distinct set is a token signed and kept, so the cache is bounded: at most
/// `maximumEntries` tokens (`jwt_svid_cache_max_size`, SPIRE's key) and `maximumBytes` of them; the least recently
/// used goes first, and expired tokens are dropped whenever room is needed. It has its own lock: storing a token
/// changes nothing a stream sees, so it never waits behind the delivery of an X.509 update.
package final class JWTSVIDCache: Sendable {
    /// A SPIFFE ID and a sorted, duplicate-free audience list.
    package struct Key: Hashable, Sendable {
        package let spiffeID: SPIFFEID
        package let audience: [String]

        package init(spiffeID: SPIFFEID, audience: [String]) {
            self.spiffeID = spiffeID
            self.audience = Array(Set(audience)).sorted()
        }

        /// What the key costs in memory, roughly: the audience strings and the ID.
        var bytes: Int { audience.reduce(spiffeID.path.utf8.count) { $0 + $1.utf8.count + 16 } }
    }

    private struct Cached {
        let token: String
        let issuedAt: Date
        let expiresAt: Date
        var lastUsed: UInt64
        let bytes: Int
    }

    private struct State {
        var tokens: [Key: Cached] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        var evictions = 0
    }

    package let maximumEntries: Int
    package let maximumBytes: Int
    package let policy: RenewalPolicy
    /// What one cached token costs beyond its strings (dictionary slot, dates, counters).
    static let overhead = 96
    private let state = Mutex(State())

    package init(maximumEntries: Int = 1000, maximumBytes: Int = 4 << 20, policy: RenewalPolicy = RenewalPolicy()) {
        self.maximumEntries = max(1, maximumEntries)
        self.maximumBytes = max(1024, maximumBytes)
        self.policy = policy
    }

    /// The cached token for `key`, if it is still before half its lifetime at `now`.
    package func token(for key: Key, at now: Date) -> String? {
        state.withLock { state in
            guard var cached = state.tokens[key] else { return nil }
            guard policy.isJWTReusable(issuedAt: cached.issuedAt, expiresAt: cached.expiresAt, at: now) else {
                return nil
            }
            state.clock += 1
            cached.lastUsed = state.clock
            state.tokens[key] = cached
            return cached.token
        }
    }

    /// Keeps `svid` for `key`, making room first: expired tokens go, then the least recently used.
    package func store(_ svid: JWTSVID, for key: Key, at now: Date) {
        let bytes = svid.token.utf8.count + key.bytes + Self.overhead
        guard bytes <= maximumBytes else { return }
        state.withLock { state in
            if let old = state.tokens.removeValue(forKey: key) { state.bytes -= old.bytes }
            if state.tokens.count >= maximumEntries || state.bytes + bytes > maximumBytes {
                for (key, cached) in state.tokens where cached.expiresAt <= now {
                    state.tokens[key] = nil
                    state.bytes -= cached.bytes
                }
            }
            while state.tokens.count >= maximumEntries || state.bytes + bytes > maximumBytes,
                let oldest = state.tokens.min(by: { $0.value.lastUsed < $1.value.lastUsed })
            {
                state.tokens[oldest.key] = nil
                state.bytes -= oldest.value.bytes
                state.evictions += 1
            }
            state.clock += 1
            state.tokens[key] = Cached(
                token: svid.token,
                issuedAt: svid.issuedAt ?? now,
                expiresAt: svid.expiresAt,
                lastUsed: state.clock,
                bytes: bytes
            )
            state.bytes += bytes
        }
    }

    /// Forgets the tokens of identities no entry holds any more.
    package func retain(spiffeIDs: Set<SPIFFEID>) {
        state.withLock { state in
            for (key, cached) in state.tokens where !spiffeIDs.contains(key.spiffeID) {
                state.tokens[key] = nil
                state.bytes -= cached.bytes
            }
        }
    }

    /// Tokens held, their approximate bytes, and how many were evicted to make room.
    package var usage: (count: Int, bytes: Int, evictions: Int) {
        state.withLock { ($0.tokens.count, $0.bytes, $0.evictions) }
    }
}
