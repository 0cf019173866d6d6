import Foundation
import SPIFFE
import SPIFFECrypto
import Testing

@testable import Upstream

@Suite("Embedded CA")
struct LocalAuthorityTests {
    let trustDomain = try! TrustDomain("example.org")
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func config(_ directory: String, caTTL: Duration = .seconds(1000)) -> LocalAuthority.Config {
        LocalAuthority.Config(
            trustDomain: trustDomain,
            dataDirectory: directory,
            caTTL: caTTL,
            x509SVIDTTL: .seconds(60)
        )
    }

    @Test("the CA is created once, with private files 0600, and reused after a restart")
    func persistsAcrossRestarts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try LocalAuthority(config: config(directory), now: Self.start)
        let bundle = first.bundle(at: Self.start)
        #expect(bundle.x509Authorities.count == 1)
        #expect(bundle.jwtAuthorities.count == 1)
        #expect(bundle.witAuthorities.count == 1)
        #expect(bundle.witAuthorities[0].keyID != bundle.jwtAuthorities[0].keyID)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory + "/authority").sorted()
        #expect(files.count == 4)  // the root certificate and its key, the JWT key, the WIT key
        for file in files {
            let mode =
                try FileManager.default.attributesOfItem(atPath: "\(directory)/authority/\(file)")[.posixPermissions]
                as? Int
            #expect(mode == (file.hasSuffix(".pem") ? 0o644 : 0o600), "\(file)")
        }
        let directoryMode =
            try FileManager.default.attributesOfItem(atPath: directory + "/authority")[.posixPermissions] as? Int
        #expect(directoryMode == 0o700)
        let second = try LocalAuthority(config: config(directory), now: Self.start + 10)
        #expect(second.bundle(at: Self.start + 10) == bundle)

        // A generation stored before WIT-SVIDs existed gets its WIT key at the next start, kept from then on.
        let witKey = try #require(files.first { $0.hasSuffix(".wit.key") })
        try FileManager.default.removeItem(atPath: "\(directory)/authority/\(witKey)")
        let upgraded = try LocalAuthority(config: config(directory), now: Self.start + 20).bundle(at: Self.start + 20)
        #expect(upgraded.witAuthorities.count == 1 && upgraded.witAuthorities != bundle.witAuthorities)
        #expect(upgraded.x509Authorities == bundle.x509Authorities && upgraded.jwtAuthorities == bundle.jwtAuthorities)
        let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/authority/\(witKey)")[
            .posixPermissions
        ]
        #expect(mode as? Int == 0o600)
        let again = try LocalAuthority(config: config(directory), now: Self.start + 30).bundle(at: Self.start + 30)
        #expect(again.witAuthorities == upgraded.witAuthorities)
    }

    @Test("the next CA is published at half-life and signs only from three quarters; expired CAs leave the bundle")
    func rotatesWithoutACliff() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try LocalAuthority(config: config(directory), now: Self.start)
        let firstRoot = authority.bundle(at: Self.start).x509Authorities[0]
        #expect(try !authority.rotateIfDue(now: Self.start + 400))

        let half = Self.start + 510
        #expect(try authority.rotateIfDue(now: half))
        let both = authority.bundle(at: half)
        #expect(both.x509Authorities.count == 2)
        #expect(both.jwtAuthorities.count == 2)
        #expect(both.x509Authorities[0] == firstRoot)

        // Between half and three quarters the old root still signs.
        let key = try PrivateKey(generating: .ecP256)
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: nil)
        let id = try SPIFFEID("spiffe://example.org/w")
        let early = try authority.signX509SVID(csr: csr, spiffeID: id, ttl: nil, dnsNames: [], now: half + 10)
        #expect(early[0].isIssued(by: try Certificate(derEncoded: firstRoot)))
        let late = try authority.signX509SVID(csr: csr, spiffeID: id, ttl: nil, dnsNames: [], now: Self.start + 760)
        #expect(late[0].isIssued(by: try Certificate(derEncoded: both.x509Authorities[1])))
        // An SVID from the old root verifies with the bundle that holds both roots.
        _ = try X509SVIDVerifier.verify(early, bundle: try X509Bundle(both), at: half + 20)

        // After the first root expires it is dropped, from the bundle and from disk.
        let after = Self.start + 1001
        _ = try authority.rotateIfDue(now: after)
        #expect(authority.bundle(at: after).x509Authorities == [both.x509Authorities[1]])
        #expect(authority.bundle(at: after).witAuthorities == [both.witAuthorities[1]])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/authority").count == 4)
        let reloaded = try LocalAuthority(config: config(directory), now: after)
        #expect(reloaded.bundle(at: after).x509Authorities == [both.x509Authorities[1]])
    }

    @Test("SVIDs never outlive the signing CA, and JWT-SVIDs carry the published key id")
    func signing() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try LocalAuthority(config: config(directory), now: Self.start)
        let id = try SPIFFEID("spiffe://example.org/w")
        let csr = try CertificateSigningRequest(privateKey: try PrivateKey(generating: .ecP256), spiffeID: nil)
        let chain = try authority.signX509SVID(
            csr: csr,
            spiffeID: id,
            ttl: .seconds(5000),
            dnsNames: [],
            now: Self.start
        )
        #expect(chain[0].notAfter == Date(timeIntervalSince1970: Self.start.timeIntervalSince1970 + 1000))
        let jwt = try authority.signJWTSVID(spiffeID: id, audience: ["a"], ttl: nil, now: Self.start)
        let bundle = authority.bundle(at: Self.start)
        let validated = try JWTSVIDValidator().validate(
            jwt.token,
            audience: "a",
            bundles: { _ in bundle },
            at: Self.start
        )
        #expect(validated.spiffeID == id)
        #expect(throws: UpstreamError.self) {
            try authority.signX509SVID(
                csr: csr,
                spiffeID: try SPIFFEID("spiffe://other.org/w"),
                ttl: nil,
                dnsNames: [],
                now: Self.start
            )
        }
    }

    @Test("a data directory from another trust domain is refused, not overwritten")
    func refusesForeignState() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try LocalAuthority(config: config(directory), now: Self.start)
        var other = config(directory)
        other.trustDomain = try TrustDomain("other.org")
        #expect(throws: UpstreamError(.corruptState, "")) { try LocalAuthority(config: other, now: Self.start) }
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory + "/authority/ca-1.pem"))
        #expect(throws: UpstreamError(.corruptState, "")) {
            try LocalAuthority(config: config(directory), now: Self.start)
        }
    }

    @Test("atomic writes set the mode from the start and replace whole files")
    func atomicFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/secret"
        try AtomicFile.write(Data("one".utf8), to: path, mode: 0o600)
        try AtomicFile.write(Data("two".utf8), to: path, mode: 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["secret"])
        #expect(throws: UpstreamError(.storage, "")) {
            try AtomicFile.write(Data(), to: directory + "/missing/file", mode: 0o600)
        }
    }
}
