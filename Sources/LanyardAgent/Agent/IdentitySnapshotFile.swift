import Foundation
import IdentityCache
import SPIFFE
import SPIFFECrypto
import Upstream

/// `data_dir/identities.json`: the cache's entries, bundles and X509-SVIDs (keys included), so that a restart, even
/// one while the upstream is unreachable, serves every SVID that is still valid at once.
///
/// Written atomically (0600, in the agent's private `data_dir`) whenever what it holds changes, as one consistent
/// snapshot. Loading checks everything before anything is used: the trust domain, the agent identity it was taken
/// under (fleet mode), every chain against its key and its entry's SPIFFE ID. A snapshot that fails any check is
/// refused as a whole and set aside, never served and never silently overwritten.
struct IdentitySnapshotFile: Sendable {
    static let fileName = "identities.json"
    /// Larger files are refused unread: 10,000 SVIDs take about 40 MiB.
    static let maximumBytes = 256 << 20
    static let version = 1

    let directory: String
    let trustDomain: TrustDomain

    var path: String { directory + "/" + Self.fileName }

    /// Why a stored snapshot is not used.
    struct Refusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: - Writing

    /// Writes `snapshot`, taken while the agent held `agentID` (fleet mode; nil in standalone mode).
    func save(_ snapshot: CacheSnapshot, agentID: SPIFFEID?) throws {
        let stored = try Stored(snapshot, trustDomain: trustDomain, agentID: agentID)
        let data = try JSONEncoder().encode(stored)
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        try AtomicFile.write(data, to: path, mode: 0o600)
    }

    // MARK: - Reading

    /// The stored snapshot, nil when there is none. `agentID` is the agent identity the agent holds now (fleet
    /// mode), which the snapshot must have been taken under.
    func load(agentID: SPIFFEID?) throws(Refusal) -> CacheSnapshot? {
        AtomicFile.removeLeftovers(in: directory)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Self.maximumBytes else {
            throw Refusal("it is \(size) bytes, more than the \(Self.maximumBytes) a snapshot may be")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw Refusal("it cannot be read") }
        let stored: Stored
        do {
            stored = try JSONDecoder().decode(Stored.self, from: data)
        } catch {
            throw Refusal("it is not a snapshot: \(error)")
        }
        guard stored.version == Self.version else {
            throw Refusal("it has version \(stored.version); this agent reads version \(Self.version)")
        }
        guard stored.trustDomain == trustDomain.name else {
            throw Refusal("it is for trust domain \(stored.trustDomain), not \(trustDomain)")
        }
        guard stored.agentID == agentID?.description else {
            throw Refusal(
                "it was taken as agent \(stored.agentID ?? "none"), and this agent is \(agentID?.description ?? "none")"
            )
        }
        do {
            return try stored.snapshot(trustDomain: trustDomain)
        } catch let refusal as Refusal {
            throw refusal
        } catch {
            throw Refusal("\(error)")
        }
    }

    /// Moves a refused snapshot aside (`identities.json.refused-<unix time>`), so the next one does not overwrite
    /// what an operator may want to look at; returns where it went.
    func setAside(at now: Date) -> String? {
        let target = "\(path).refused-\(Int(now.timeIntervalSince1970))"
        return rename(path, target) == 0 ? target : nil
    }
}

// MARK: - The file's form

extension IdentitySnapshotFile {
    /// Version 1 of the file: JSON, DER as base64, times as seconds since 1970, bundles as SPIFFE bundle documents.
    struct Stored: Codable {
        var version: Int
        var trustDomain: String
        var agentID: String?
        var takenAt: Double
        var bundle: String
        var federatedBundles: [String: String]
        var entries: [Entry]
        var svids: [SVID]

        enum CodingKeys: String, CodingKey {
            case version
            case trustDomain = "trust_domain"
            case agentID = "agent_id"
            case takenAt = "taken_at"
            case bundle
            case federatedBundles = "federated_bundles"
            case entries, svids
        }

        struct Entry: Codable {
            var id: String
            var spiffeID: SPIFFEID
            var selectors: [Selector]
            var x509SVIDTTL: Double?
            var jwtSVIDTTL: Double?
            var witSVIDTTL: Double?
            var dnsNames: [String]
            var hint: String
            var federatesWith: [TrustDomain]
            var revision: Int64

            enum CodingKeys: String, CodingKey {
                case id
                case spiffeID = "spiffe_id"
                case selectors
                case x509SVIDTTL = "x509_svid_ttl"
                case jwtSVIDTTL = "jwt_svid_ttl"
                case witSVIDTTL = "wit_svid_ttl"
                case dnsNames = "dns_names"
                case hint
                case federatesWith = "federates_with"
                case revision
            }
        }

        struct SVID: Codable {
            var entryID: String
            var chain: Data
            var privateKey: Data
            var renewAt: Double
            var revision: Int64
            var dnsNames: [String]

            enum CodingKeys: String, CodingKey {
                case entryID = "entry_id"
                case chain = "x509_svid"
                case privateKey = "x509_svid_key"
                case renewAt = "renew_at"
                case revision
                case dnsNames = "dns_names"
            }
        }

        init(_ snapshot: CacheSnapshot, trustDomain: TrustDomain, agentID: SPIFFEID?) throws {
            version = IdentitySnapshotFile.version
            self.trustDomain = trustDomain.name
            self.agentID = agentID?.description
            takenAt = snapshot.takenAt.timeIntervalSince1970
            bundle = String(decoding: try snapshot.bundle.jwksData(format: .spiffe), as: UTF8.self)
            federatedBundles = try Dictionary(
                uniqueKeysWithValues: snapshot.federatedBundles.map { trustDomain, bundle in
                    (trustDomain.name, String(decoding: try bundle.jwksData(format: .spiffe), as: UTF8.self))
                }
            )
            entries = snapshot.entries.map { entry in
                Entry(
                    id: entry.id,
                    spiffeID: entry.spiffeID,
                    selectors: entry.selectors.sorted(),
                    x509SVIDTTL: entry.x509SVIDTTL?.timeInterval,
                    jwtSVIDTTL: entry.jwtSVIDTTL?.timeInterval,
                    witSVIDTTL: entry.witSVIDTTL?.timeInterval,
                    dnsNames: entry.dnsNames,
                    hint: entry.hint,
                    federatesWith: entry.federatesWith,
                    revision: entry.revision
                )
            }
            svids = snapshot.svids.sorted { $0.key < $1.key }.map { id, cached in
                SVID(
                    entryID: id,
                    chain: cached.svid.chainDER,
                    privateKey: cached.svid.privateKeyDER,
                    renewAt: cached.renewAt.timeIntervalSince1970,
                    revision: cached.revision,
                    dnsNames: cached.dnsNames
                )
            }
        }

        /// The snapshot, every SVID checked: its chain parses, its key is the leaf's, and its SPIFFE ID is its
        /// entry's.
        func snapshot(trustDomain: TrustDomain) throws -> CacheSnapshot {
            let entries = self.entries.map { entry in
                RegistrationEntry(
                    id: entry.id,
                    spiffeID: entry.spiffeID,
                    selectors: Set(entry.selectors),
                    x509SVIDTTL: entry.x509SVIDTTL.map { Duration.seconds($0) },
                    jwtSVIDTTL: entry.jwtSVIDTTL.map { Duration.seconds($0) },
                    witSVIDTTL: entry.witSVIDTTL.map { Duration.seconds($0) },
                    dnsNames: entry.dnsNames,
                    hint: entry.hint,
                    federatesWith: entry.federatesWith,
                    revision: entry.revision
                )
            }
            let byID = Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            guard byID.count == entries.count else { throw Refusal("two entries share an ID") }
            var svids: [String: CacheState.CachedSVID] = [:]
            for stored in self.svids {
                guard let entry = byID[stored.entryID] else {
                    throw Refusal("an SVID names entry \(stored.entryID), which it does not hold")
                }
                let svid = try X509SVID(
                    certificates: Certificate.chain(derConcatenated: stored.chain),
                    privateKey: PrivateKey(pkcs8DER: stored.privateKey)
                )
                guard svid.spiffeID == entry.spiffeID else {
                    throw Refusal("the SVID of entry \(entry.id) is \(svid.spiffeID), not \(entry.spiffeID)")
                }
                svids[entry.id] = CacheState.CachedSVID(
                    svid: try IssuedSVID(svid, spiffeID: entry.spiffeID),
                    renewAt: Date(timeIntervalSince1970: stored.renewAt),
                    revision: stored.revision,
                    dnsNames: stored.dnsNames
                )
            }
            var federated: [TrustDomain: SPIFFEBundle] = [:]
            for (name, json) in federatedBundles {
                let foreign = try TrustDomain(name)
                federated[foreign] = try SPIFFEBundle(trustDomain: foreign, jwksData: Data(json.utf8))
            }
            return CacheSnapshot(
                takenAt: Date(timeIntervalSince1970: takenAt),
                entries: entries,
                bundle: try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(bundle.utf8)),
                federatedBundles: federated,
                svids: svids
            )
        }
    }
}
