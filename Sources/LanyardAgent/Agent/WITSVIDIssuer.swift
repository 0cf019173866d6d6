import Endpoints
import Foundation
import IdentityCache
import SPIFFE
import SPIFFECrypto
import Synchronization

/// Mints and holds one WIT-SVID per entry: a fresh P-256 workload key, the token binding it (`cnf`), renewed at half
/// its life like an X509-SVID. Instances of the same workload on the node share it, which the WIT-SVID standard
/// allows. Held SVIDs are bounded: those of entries no longer asked for are dropped first.
final class WITSVIDIssuer: Sendable {
    private struct Held {
        let revision: Int64
        let svid: WITSVID
        let privateKeyJWK: String
        let renewAt: Date
    }

    private let upstream: any IdentityUpstream
    private let held = Mutex<[String: Held]>([:])
    let limit: Int

    init(upstream: any IdentityUpstream, limit: Int = 10_000) {
        self.upstream = upstream
        self.limit = limit
    }

    /// WIT-SVIDs for `entries` (each with its hint), minting those missing, due or minted for an older revision,
    /// and the earliest renewal among them. Throws when the upstream cannot sign.
    func svids(for entries: [RegistrationEntry], at now: Date) async throws -> WorkloadWITSVIDs {
        var answers: [WorkloadWITSVID] = []
        var renewAt: Date? = nil
        for entry in entries {
            var current = held.withLock { $0[entry.id] }
            if current == nil || current!.revision != entry.revision || now >= current!.renewAt
                || now >= current!.svid.expiresAt
            {
                current = try await mint(entry, at: now)
            }
            guard let current else { continue }
            answers.append(
                WorkloadWITSVID(
                    spiffeID: entry.spiffeID,
                    token: current.svid.token,
                    privateKeyJWK: current.privateKeyJWK,
                    hint: entry.hint
                )
            )
            renewAt = min(renewAt ?? current.renewAt, current.renewAt)
        }
        return WorkloadWITSVIDs(svids: answers, renewAt: renewAt)
    }

    private func mint(_ entry: RegistrationEntry, at now: Date) async throws -> Held? {
        let key = try PrivateKey(generating: .ecP256)
        guard let svid = try await upstream.signWITSVID(for: entry, workloadKey: try key.publicKey, at: now) else {
            return nil
        }
        let issued = svid.issuedAt ?? now
        let made = Held(
            revision: entry.revision,
            svid: svid,
            privateKeyJWK: String(decoding: try key.privateJWKData, as: UTF8.self),
            renewAt: issued.addingTimeInterval(svid.expiresAt.timeIntervalSince(issued) / 2)
        )
        held.withLock { held in
            held[entry.id] = made
            if held.count > limit {
                // The soonest to expire first: what nobody renewed lately.
                for (id, _) in held.sorted(by: { $0.value.svid.expiresAt < $1.value.svid.expiresAt })
                    .prefix(held.count - limit)
                {
                    held[id] = nil
                }
            }
        }
        return made
    }
}
