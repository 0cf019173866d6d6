public import Foundation
public import SPIFFE
public import SPIFFECrypto

/// The agent's own identity from SPIRE Server: its X509-SVID and key, the trust bundle it verifies the server with,
/// and whether the server lets it re-attest by itself.
///
/// Stored as one 0600 JSON file in `data_dir` written atomically, so a restart reuses it without node attestation
/// (a join token is single-use) and a crash mid-write leaves the previous file.
public struct AgentIdentity: Sendable {
    public var svid: X509SVID
    public var bundle: SPIFFEBundle
    public var reattestable: Bool
    /// When the server issued it, as seen here: servers backdate `notBefore`, so half-life counts from this.
    public var receivedAt: Date

    public init(svid: X509SVID, bundle: SPIFFEBundle, reattestable: Bool, receivedAt: Date) {
        self.svid = svid
        self.bundle = bundle
        self.reattestable = reattestable
        self.receivedAt = receivedAt
    }

    /// Halfway between receipt and expiry: when the agent renews it.
    public var renewAt: Date {
        let issued = max(receivedAt, svid.leaf.notBefore)
        return issued.addingTimeInterval(svid.expiresAt.timeIntervalSince(issued) / 2)
    }

    static let fileName = "agent-identity.json"

    struct Stored: Codable {
        var version: Int
        var svidPEM: String
        var privateKeyPEM: String
        var bundle: String
        var reattestable: Bool
        var receivedAt: Double?

        enum CodingKeys: String, CodingKey {
            case version
            case svidPEM = "svid_pem"
            case privateKeyPEM = "private_key_pem"
            case bundle
            case reattestable
            case receivedAt = "received_at"
        }
    }

    /// The stored identity for `trustDomain`, nil when there is none; a file that exists but cannot be used is an
    /// error (it is never overwritten silently: the operator decides).
    public static func load(directory: String, trustDomain: TrustDomain) throws(UpstreamError) -> AgentIdentity? {
        let path = directory + "/" + fileName
        AtomicFile.removeLeftovers(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UpstreamError(.storage, "cannot read \(path)")
        }
        return try UpstreamError.wrapping(.corruptState, "\(path) is not a usable agent identity") {
            let stored = try JSONDecoder().decode(Stored.self, from: data)
            guard stored.version == 1 else {
                throw UpstreamError(.corruptState, "\(path) has version \(stored.version); this agent reads version 1")
            }
            let chain = try Certificate.chain(pemEncoded: stored.svidPEM)
            let svid = try X509SVID(certificates: chain, privateKey: PrivateKey(pemEncoded: stored.privateKeyPEM))
            guard svid.spiffeID.trustDomain == trustDomain else {
                throw UpstreamError(
                    .corruptState,
                    "\(path) holds an identity in \(svid.spiffeID.trustDomain), not \(trustDomain)"
                )
            }
            let bundle = try SPIFFEBundle(trustDomain: trustDomain, jwksData: Data(stored.bundle.utf8))
            return AgentIdentity(
                svid: svid,
                bundle: bundle,
                reattestable: stored.reattestable,
                receivedAt: stored.receivedAt.map(Date.init(timeIntervalSince1970:)) ?? svid.leaf.notBefore
            )
        }
    }

    /// Writes the identity atomically with mode 0600.
    public func save(directory: String) throws(UpstreamError) {
        let bundleJSON = try UpstreamError.wrapping(.storage, "cannot encode the trust bundle") {
            try bundle.jwksData(format: .spiffe)
        }
        let keyPEM = try UpstreamError.wrapping(.storage, "cannot encode the agent key") {
            try svid.privateKey.pemEncoded
        }
        let stored = Stored(
            version: 1,
            svidPEM: svid.certificates.map(\.pemEncoded).joined(),
            privateKeyPEM: keyPEM,
            bundle: String(decoding: bundleJSON, as: UTF8.self),
            reattestable: reattestable,
            receivedAt: receivedAt.timeIntervalSince1970
        )
        let data: Data
        do {
            data = try JSONEncoder().encode(stored)
        } catch {
            throw UpstreamError(.storage, "cannot encode the agent identity")
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw UpstreamError(.storage, "cannot create \(directory): \(error.localizedDescription)")
        }
        try AtomicFile.write(data, to: directory + "/" + Self.fileName, mode: 0o600)
    }
}
