public import Foundation
public import SPIFFE
public import SPIFFECrypto
import Synchronization

/// The embedded CA of a standalone node: it signs X509-SVIDs and JWT-SVIDs for the entries of the configuration.
///
/// The authority lives in `data_dir/authority` as generations, each a self-signed root and a JWT signing key,
/// private files 0600, written atomically, and reused on every restart. A long-running node never hits a cliff:
/// at half of the active root's life the next generation is made and published in the bundle, and only at three
/// quarters of that life does it start signing, so every workload has long had the new root when it sees the
/// first SVID signed by it. Roots stay in the bundle until they expire, so SVIDs already issued keep verifying.
public final class LocalAuthority: Sendable {
    public struct Config: Sendable {
        public var trustDomain: TrustDomain
        public var dataDirectory: String
        public var caKeyType: KeyType
        public var caTTL: Duration
        public var x509SVIDTTL: Duration
        public var jwtSVIDTTL: Duration

        public init(
            trustDomain: TrustDomain,
            dataDirectory: String,
            caKeyType: KeyType = .ecP256,
            caTTL: Duration = .seconds(8760 * 3600),
            x509SVIDTTL: Duration = .seconds(3600),
            jwtSVIDTTL: Duration = .seconds(300)
        ) {
            self.trustDomain = trustDomain
            self.dataDirectory = dataDirectory
            self.caKeyType = caKeyType
            self.caTTL = caTTL
            self.x509SVIDTTL = x509SVIDTTL
            self.jwtSVIDTTL = jwtSVIDTTL
        }
    }

    /// One root CA and the JWT and WIT keys that go with it.
    struct Generation: Sendable {
        let authority: CertificateAuthority
        let jwtSigner: JWTSVIDSigner
        let witSigner: WITSVIDSigner

        var notBefore: Date { authority.certificate.notBefore }
        var notAfter: Date { authority.certificate.notAfter }
        var lifetime: TimeInterval { notAfter.timeIntervalSince(notBefore) }
        /// Files are named after the root's start time, which also orders generations.
        var stem: String { String(Int64(notBefore.timeIntervalSince1970)) }
    }

    public let config: Config
    private let generations: Mutex<[Generation]>

    var directory: String { config.dataDirectory + "/authority" }

    /// Loads the stored generations, or creates the first one, and prepares the next one if it is due.
    public init(config: Config, now: Date) throws(UpstreamError) {
        self.config = config
        self.generations = Mutex([])
        try createDirectory(config.dataDirectory)
        try createDirectory(directory)
        var loaded = try loadGenerations(now: now)
        if loaded.isEmpty { loaded.append(try makeGeneration(now: now)) }
        generations.withLock { $0 = loaded }
        _ = try rotateIfDue(now: now)
    }

    /// Makes the next generation when the newest has lived half its life, and forgets expired ones.
    /// Returns whether anything changed.
    public func rotateIfDue(now: Date) throws(UpstreamError) -> Bool {
        let current = generations.withLock { $0 }
        var next = current.filter { $0.notAfter > now }
        var changed = next.count != current.count
        if let newest = next.last, now >= newest.notBefore + newest.lifetime / 2 {
            next.append(try makeGeneration(now: now))
            changed = true
        }
        if next.isEmpty {
            next.append(try makeGeneration(now: now))
            changed = true
        }
        for expired in current where expired.notAfter <= now { removeFiles(of: expired) }
        if changed { generations.withLock { $0 = next } }
        return changed
    }

    /// Each generation's validity, oldest first, and whether it is the one signing at `now` (for `lanyard status`).
    public func generationValidity(at now: Date) -> [(notBefore: Date, notAfter: Date, signing: Bool)] {
        let signing = signingGeneration(at: now).notBefore
        return generations.withLock { list in
            list.map { ($0.notBefore, $0.notAfter, $0.notBefore == signing) }
        }
    }

    /// Whether a root that has not expired can sign at `now` (so a failed rotation can wait for the next pass).
    public func canSign(at now: Date) -> Bool {
        generations.withLock { list in list.contains { $0.notAfter > now } }
    }

    /// The generation that signs at `now`: the newest whose predecessor has reached three quarters of its life.
    func signingGeneration(at now: Date) -> Generation {
        generations.withLock { list in
            var active = list[0]
            for (previous, candidate) in zip(list, list.dropFirst())
            where now >= previous.notBefore + previous.lifetime * 0.75 || now >= previous.notAfter {
                active = candidate
            }
            return active
        }
    }

    /// The trust bundle: every live root, JWT key and WIT key. The sequence number follows the newest generation.
    public func bundle(at now: Date) -> SPIFFEBundle {
        let live = generations.withLock { $0 }.filter { $0.notAfter > now }
        return SPIFFEBundle(
            trustDomain: config.trustDomain,
            x509Authorities: live.map(\.authority.certificate.derEncoded),
            jwtAuthorities: live.compactMap { try? $0.jwtSigner.bundleAuthority },
            witAuthorities: live.compactMap { try? $0.witSigner.bundleAuthority },
            sequenceNumber: UInt64(max(0, live.last?.notBefore.timeIntervalSince1970 ?? 0)),
            refreshHint: 300
        )
    }

    /// Signs an X509-SVID for `spiffeID` from the agent's CSR.
    public func signX509SVID(
        csr: CertificateSigningRequest,
        spiffeID: SPIFFEID,
        ttl: Duration?,
        dnsNames: [String],
        now: Date
    ) throws(UpstreamError) -> [Certificate] {
        do {
            return try signingGeneration(at: now).authority.issueX509SVID(
                csr: csr,
                spiffeID: spiffeID,
                ttl: ttl ?? config.x509SVIDTTL,
                dnsNames: dnsNames,
                now: now
            )
        } catch {
            throw UpstreamError(.signingRefused, "x509-svid for \(spiffeID): \(error.message)")
        }
    }

    /// Signs a JWT-SVID, never valid past the signing generation's root.
    public func signJWTSVID(
        spiffeID: SPIFFEID,
        audience: [String],
        ttl: Duration?,
        now: Date
    ) throws(UpstreamError) -> JWTSVID {
        let generation = signingGeneration(at: now)
        let lifetime = (ttl ?? config.jwtSVIDTTL).timeInterval
        do {
            return try generation.jwtSigner.sign(
                spiffeID: spiffeID,
                audience: audience,
                expiresAt: min(now + lifetime, generation.notAfter),
                issuedAt: now
            )
        } catch {
            throw UpstreamError(.signingRefused, "jwt-svid for \(spiffeID): \(error.message)")
        }
    }

    /// Signs a WIT-SVID binding `workloadKey` to `spiffeID`, never valid past the signing generation's root.
    public func signWITSVID(
        spiffeID: SPIFFEID,
        workloadKey: PublicKey,
        ttl: Duration?,
        now: Date
    ) throws(UpstreamError) -> WITSVID {
        let generation = signingGeneration(at: now)
        let lifetime = (ttl ?? config.jwtSVIDTTL).timeInterval
        do {
            return try generation.witSigner.sign(
                spiffeID: spiffeID,
                workloadKey: workloadKey,
                expiresAt: min(now + lifetime, generation.notAfter),
                issuedAt: now
            )
        } catch {
            throw UpstreamError(.signingRefused, "wit-svid for \(spiffeID): \(error.message)")
        }
    }

    // MARK: - Storage

    private func makeGeneration(now: Date) throws(UpstreamError) -> Generation {
        do {
            let authority = try CertificateAuthority.makeRoot(
                trustDomain: config.trustDomain,
                keyType: config.caKeyType,
                ttl: config.caTTL,
                now: now
            )
            let jwtKey = try PrivateKey(generating: config.caKeyType)
            let signer = try JWTSVIDSigner(privateKey: jwtKey, keyID: JWTSVIDSigner.keyID(for: try jwtKey.publicKey))
            let witKey = try PrivateKey(generating: config.caKeyType)
            let witSigner = try WITSVIDSigner(privateKey: witKey, keyID: WITSVIDSigner.keyID(for: try witKey.publicKey))
            let generation = Generation(authority: authority, jwtSigner: signer, witSigner: witSigner)
            let base = "\(directory)/ca-\(generation.stem)"
            // Keys first: a certificate on disk always has its key beside it, and the certificate, written last,
            // is what makes a generation exist. A failed write removes what this generation wrote; a crash may leave
            // keys without a certificate, which the next start removes.
            do {
                try AtomicFile.write(Data(try authority.privateKey.pemEncoded.utf8), to: base + ".key", mode: 0o600)
                try AtomicFile.write(Data(try jwtKey.pemEncoded.utf8), to: base + ".jwt.key", mode: 0o600)
                try AtomicFile.write(Data(try witKey.pemEncoded.utf8), to: base + ".wit.key", mode: 0o600)
                try AtomicFile.write(Data(authority.certificate.pemEncoded.utf8), to: base + ".pem", mode: 0o644)
            } catch {
                removeFiles(of: generation)
                throw error
            }
            return generation
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw UpstreamError(.storage, "cannot create a signing authority: \(error)")
        }
    }

    private func loadGenerations(now: Date) throws(UpstreamError) -> [Generation] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw UpstreamError(.storage, "cannot list \(directory): \(error.localizedDescription)")
        }
        AtomicFile.removeLeftovers(in: directory)
        // Keys whose certificate was never written belong to a generation that a crash interrupted: never used.
        for name in names where name.hasPrefix("ca-") && name.hasSuffix(".key") {
            let stem = name.hasSuffix(".jwt.key") || name.hasSuffix(".wit.key") ? name.dropLast(8) : name.dropLast(4)
            if !names.contains(stem + ".pem") {
                try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
            }
        }
        var loaded: [Generation] = []
        for name in names where name.hasPrefix("ca-") && name.hasSuffix(".pem") {
            let base = "\(directory)/\(name.dropLast(4))"
            do {
                let certificate = try Certificate(pemEncoded: try Self.read(base + ".pem"))
                let key = try PrivateKey(pemEncoded: try Self.read(base + ".key"))
                let jwtKey = try PrivateKey(pemEncoded: try Self.read(base + ".jwt.key"))
                let authority = try CertificateAuthority(certificate: certificate, privateKey: key)
                guard authority.trustDomain == config.trustDomain else {
                    throw UpstreamError(
                        .corruptState,
                        "\(base).pem is for trust domain \(authority.trustDomain), not \(config.trustDomain); move data_dir aside to start over"
                    )
                }
                let signer = try JWTSVIDSigner(
                    privateKey: jwtKey,
                    keyID: JWTSVIDSigner.keyID(for: try jwtKey.publicKey)
                )
                let generation = Generation(
                    authority: authority,
                    jwtSigner: signer,
                    witSigner: try loadWITSigner(base + ".wit.key")
                )
                if generation.notAfter <= now {
                    removeFiles(of: generation)
                } else {
                    loaded.append(generation)
                }
            } catch let error as UpstreamError {
                throw error
            } catch {
                throw UpstreamError(.corruptState, "cannot load the authority \(base): \(error)")
            }
        }
        return loaded.sorted { $0.notBefore < $1.notBefore }
    }

    /// A generation's WIT key; one stored before WIT-SVIDs existed gets its key now (written before it is used).
    private func loadWITSigner(_ path: String) throws -> WITSVIDSigner {
        let key: PrivateKey
        if FileManager.default.fileExists(atPath: path) {
            key = try PrivateKey(pemEncoded: try Self.read(path))
        } else {
            key = try PrivateKey(generating: config.caKeyType)
            try AtomicFile.write(Data(try key.pemEncoded.utf8), to: path, mode: 0o600)
        }
        return try WITSVIDSigner(privateKey: key, keyID: WITSVIDSigner.keyID(for: try key.publicKey))
    }

    private func removeFiles(of generation: Generation) {
        for suffix in [".pem", ".key", ".jwt.key", ".wit.key"] {
            try? FileManager.default.removeItem(atPath: "\(directory)/ca-\(generation.stem)\(suffix)")
        }
    }

    private static func read(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
    }

    private func createDirectory(_ path: String) throws(UpstreamError) {
        do {
            try FileManager.default.createDirectory(
                atPath: path,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw UpstreamError(.storage, "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
