import Foundation
import LanyardProto
import SPIFFE
import SPIFFECrypto

/// Between SPIRE's API types and Lanyard's domain values. Everything the server sends is checked here: a malformed
/// ID, selector or key becomes a precise error, never a crash or a silently wrong entry.
enum SPIREProtoConversions {
    static func spiffeID(_ id: Spire_Api_Types_SPIFFEID) throws(UpstreamError) -> SPIFFEID {
        do {
            return try SPIFFEID(trustDomain: TrustDomain(id.trustDomain), path: id.path)
        } catch {
            throw UpstreamError(
                .protocolViolation,
                "the server sent an invalid spiffe id \(id.trustDomain)\(id.path): \(error)"
            )
        }
    }

    static func entry(_ entry: Spire_Api_Types_Entry) throws(UpstreamError) -> RegistrationEntry {
        guard !entry.id.isEmpty else {
            throw UpstreamError(.protocolViolation, "the server sent an entry without an id")
        }
        let id = try spiffeID(entry.spiffeID)
        var selectors: Set<Selector> = []
        for selector in entry.selectors {
            do {
                selectors.insert(try Selector(type: selector.type, value: selector.value))
            } catch {
                throw UpstreamError(.protocolViolation, "entry \(entry.id) has an invalid selector: \(error)")
            }
        }
        var federatesWith: [TrustDomain] = []
        for name in entry.federatesWith {
            do {
                federatesWith.append(try TrustDomain(name))
            } catch {
                throw UpstreamError(
                    .protocolViolation,
                    "entry \(entry.id) federates with an invalid trust domain \(name)"
                )
            }
        }
        return RegistrationEntry(
            id: entry.id,
            spiffeID: id,
            selectors: selectors,
            x509SVIDTTL: entry.x509SvidTtl > 0 ? .seconds(Int64(entry.x509SvidTtl)) : nil,
            jwtSVIDTTL: entry.jwtSvidTtl > 0 ? .seconds(Int64(entry.jwtSvidTtl)) : nil,
            dnsNames: entry.dnsNames,
            hint: entry.hint,
            federatesWith: federatesWith,
            revision: entry.revisionNumber
        )
    }

    static func bundle(
        _ bundle: Spire_Api_Types_Bundle,
        expected: TrustDomain? = nil
    ) throws(UpstreamError) -> SPIFFEBundle {
        let trustDomain: TrustDomain
        do {
            trustDomain = try TrustDomain(bundle.trustDomain)
        } catch {
            throw UpstreamError(
                .protocolViolation,
                "the server sent a bundle for an invalid trust domain \(bundle.trustDomain)"
            )
        }
        if let expected, trustDomain != expected {
            throw UpstreamError(
                .protocolViolation,
                "asked for the bundle of \(expected), the server sent \(trustDomain)'s"
            )
        }
        var x509: [Data] = []
        for authority in bundle.x509Authorities {
            do {
                _ = try Certificate(derEncoded: authority.asn1)
            } catch {
                throw UpstreamError(.protocolViolation, "the bundle of \(trustDomain) has an unreadable x509 authority")
            }
            x509.append(authority.asn1)
        }
        var jwt: [SPIFFEBundle.JWTAuthority] = []
        for key in bundle.jwtAuthorities {
            do {
                let publicKey = try PublicKey(spkiDER: key.publicKey)
                jwt.append(.init(keyID: key.keyID, key: try publicKey.jwk))
            } catch {
                throw UpstreamError(
                    .protocolViolation,
                    "the bundle of \(trustDomain) has an unreadable jwt authority \(key.keyID)"
                )
            }
        }
        return SPIFFEBundle(
            trustDomain: trustDomain,
            x509Authorities: x509,
            jwtAuthorities: jwt,
            sequenceNumber: bundle.sequenceNumber,
            refreshHint: bundle.refreshHint > 0 ? bundle.refreshHint : nil
        )
    }

    static func chain(_ svid: Spire_Api_Types_X509SVID, what: String) throws(UpstreamError) -> [Certificate] {
        guard !svid.certChain.isEmpty else {
            throw UpstreamError(.protocolViolation, "the server sent an empty \(what) chain")
        }
        do {
            return try svid.certChain.map { try Certificate(derEncoded: $0) }
        } catch {
            throw UpstreamError(.protocolViolation, "the server sent an unreadable \(what) chain: \(error)")
        }
    }
}
