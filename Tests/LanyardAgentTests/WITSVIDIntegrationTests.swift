import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import SPIFFE
import SPIFFECrypto
import SwiftProtobuf
import Testing

/// The WIT-SVID profile over the agent's socket with the generated client stubs; tokens checked by PyJWT
/// (`Fixtures/verify_wit.py`), never by the agent's own validator.
@Suite("WIT-SVIDs over the Workload API", .serialized, .timeLimit(.minutes(5)))
struct WITSVIDIntegrationTests {
    static let entries = """
        [[entries]]
        spiffe_id = "spiffe://example.org/web"
        selectors = ["unix:uid:0"]
        hint = "internal"
        wit_svid_ttl = "12s"

        [[entries]]
        spiffe_id = "spiffe://example.org/db"
        selectors = ["unix:uid:0"]
        hint = "external"
        wit_svid_ttl = "12s"

        [[entries]]
        spiffe_id = "spiffe://example.org/no-wit"
        selectors = ["unix:uid:0"]
        wit_svid_ttl = "0s"

        [[entries]]
        spiffe_id = "spiffe://example.org/web-again"
        selectors = ["unix:uid:0"]
        hint = "internal"
        """

    static let security: Metadata = ["workload.spiffe.io": "true"]

    /// The first `count` messages of a `FetchWITSVID` stream, each handed to `check` as it arrives (so tokens are
    /// verified while fresh, however loaded the machine).
    static func witMessages(
        _ socketPath: String,
        count: Int,
        spiffeID: String = "",
        check: @escaping @Sendable (WorkloadAPI_WITSVIDResponse) async throws -> Void = { _ in }
    ) async throws -> [WorkloadAPI_WITSVIDResponse] {
        try await WorkloadAPIClient(socketPath: socketPath).withClient { api in
            try await api.fetchWITSVID(.with { $0.spiffeID = spiffeID }, metadata: security) { response in
                var messages: [WorkloadAPI_WITSVIDResponse] = []
                for try await message in response.messages {
                    try await check(message)
                    messages.append(message)
                    if messages.count == count { break }
                }
                return messages
            }
        }
    }

    static func witBundle(_ socketPath: String) async throws -> String {
        let bundles = try await WorkloadAPIClient(socketPath: socketPath).fetchWITBundles().bundles
        return try #require(bundles["spiffe://example.org"])
    }

    /// Runs the independent verifier on one SVID; returns its output (`ok <sub>`) or the failure.
    static func verify(_ svid: WorkloadAPI_WITSVID, bundle: String, in directory: String) async throws -> String {
        let name = UUID().uuidString
        try svid.witSvid.write(toFile: "\(directory)/\(name).jwt", atomically: true, encoding: .utf8)
        try svid.witSvidKey.write(toFile: "\(directory)/\(name).jwk", atomically: true, encoding: .utf8)
        try bundle.write(toFile: "\(directory)/\(name).bundle", atomically: true, encoding: .utf8)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/verify_wit.py").path
        let result = try await LanyardCLI.runTool([
            "/usr/bin/env", "python3", fixture, "\(directory)/\(name).jwt", "\(directory)/\(name).jwk",
            "\(directory)/\(name).bundle", svid.spiffeID,
        ])
        return result.status == 0 ? result.stdout : "failed: \(result.stderr)"
    }

    @Test("WIT-SVIDs verify independently, bind the returned key, follow hints and opt-outs, and rotate on the stream")
    func fetchVerifyRotate() async throws {
        guard getuid() == 0 else {
            print("skipped: the WIT-SVID test's entries are for uid 0")
            return
        }
        let agent = try await TestAgent.start(Self.entries)
        defer { agent.removeDirectory() }
        let bundle = try await Self.witBundle(agent.socketPath)

        // Two messages of one stream: the second comes when the 12 s SVIDs reach half their life. Every SVID is
        // verified by PyJWT as it arrives.
        let directory = agent.directory
        let messages = try await Self.witMessages(agent.socketPath, count: 2) { message in
            for svid in message.svids {
                let verdict = try await Self.verify(svid, bundle: bundle, in: directory)
                #expect(verdict == "ok \(svid.spiffeID)\n", "\(verdict)")
            }
        }
        let first = messages[0].svids
        // Entry order, the duplicate hint dropped, the opted-out entry absent.
        #expect(first.map(\.spiffeID) == ["spiffe://example.org/web", "spiffe://example.org/db"])
        #expect(first.map(\.hint) == ["internal", "external"])
        let second = messages[1].svids
        #expect(second.map(\.spiffeID) == first.map(\.spiffeID))
        #expect(zip(first, second).allSatisfy { $0.witSvid != $1.witSvid && $0.witSvidKey != $1.witSvidKey })

        // One identity by request.
        let only = try await Self.witMessages(agent.socketPath, count: 1, spiffeID: "spiffe://example.org/db")
        #expect(only[0].svids.map(\.spiffeID) == ["spiffe://example.org/db"])

        // The client: files written with a private key file, and the WIT bundle among the bundles.
        let cli = try LanyardCLI(copyInto: agent.directory)
        let written = try await cli.run([
            "api", "fetch", "wit", "--socket", agent.socketPath, "--write", agent.directory + "/wit",
        ])
        #expect(written.status == 0, "\(written.stderr)")
        let keyMode =
            try FileManager.default.attributesOfItem(atPath: agent.directory + "/wit/wit_svid.0.key.jwk")[
                .posixPermissions
            ] as? NSNumber
        #expect(keyMode?.intValue == 0o600)
        #expect(FileManager.default.fileExists(atPath: agent.directory + "/wit/wit_svid.1.jwt"))
        #expect(!written.stdout.contains("eyJ"), "a written token is not printed too")
        let bundles = try await cli.run(["api", "fetch", "bundles", "--socket", agent.socketPath])
        #expect(bundles.stdout.contains("wit bundle (spiffe://example.org):"))
        await agent.stop()
    }

    @Test("the WIT bundle stream sends the next authority when the CA rotates")
    func bundleFollowsRotation() async throws {
        guard getuid() == 0 else {
            print("skipped: the WIT-SVID test's entries are for uid 0")
            return
        }
        // An 8 s root (backdated for clock skew, so generations follow each other within seconds): each new
        // generation publishes a WIT key of its own, and an expired one's leaves.
        let agent = try await TestAgent.start(
            Self.entries,
            upstream: "[upstream.local]\nca_ttl = \"8s\"\nx509_svid_ttl = \"2s\"\njwt_svid_ttl = \"2s\""
        )
        defer { agent.removeDirectory() }
        let messages = try await WorkloadAPIClient(socketPath: agent.socketPath).withClient { api in
            try await api.fetchWITBundles(WorkloadAPI_WITBundlesRequest(), metadata: Self.security) { response in
                var messages: [WorkloadAPI_WITBundlesResponse] = []
                for try await message in response.messages {
                    messages.append(message)
                    if messages.count == 2 { break }
                }
                return messages
            }
        }
        func kids(_ message: WorkloadAPI_WITBundlesResponse) throws -> Set<String> {
            let document = try JSONSerialization.jsonObject(
                with: Data((message.bundles["spiffe://example.org"] ?? "").utf8)
            )
            let keys = (document as? [String: Any])?["keys"] as? [[String: Any]] ?? []
            return Set(keys.compactMap { $0["kid"] as? String })
        }
        let before = try kids(messages[0])
        let after = try kids(messages[1])
        #expect(!before.isEmpty && before.allSatisfy { $0.hasPrefix("wit-") })
        #expect(!after.subtracting(before).isEmpty, "a new WIT key: \(before) → \(after)")
        await agent.stop()
    }

    @Test("a federated trust domain's WIT keys stream as its WIT bundle; one without WIT keys has none")
    func federatedWITBundles() async throws {
        guard getuid() == 0 else {
            print("skipped: the WIT-SVID test's entries are for uid 0")
            return
        }
        let directory = TestAgent.makeDirectory()
        // partner.org publishes a WIT key in its SPIFFE bundle; other.org only an X.509 root.
        func root(_ name: String) throws -> Data {
            try CertificateAuthority.makeRoot(
                trustDomain: try TrustDomain(name),
                keyType: .ecP256,
                ttl: .seconds(3600),
                now: Date()
            ).certificate.derEncoded
        }
        let witKey = try PrivateKey(generating: .ecP256).publicKey.jwk
        let partner = SPIFFEBundle(
            trustDomain: try TrustDomain("partner.org"),
            x509Authorities: [try root("partner.org")],
            witAuthorities: [.init(keyID: "wit-partner-1", key: witKey)]
        )
        try partner.jwksData(format: .spiffe).write(to: URL(fileURLWithPath: directory + "/partner.json"))
        let other = SPIFFEBundle(trustDomain: try TrustDomain("other.org"), x509Authorities: [try root("other.org")])
        try other.jwksData(format: .spiffe).write(to: URL(fileURLWithPath: directory + "/other.json"))
        let agent = try await TestAgent.start(
            """
            [[entries]]
            spiffe_id = "spiffe://example.org/web"
            selectors = ["unix:uid:0"]
            federates_with = ["partner.org", "other.org"]

            [[federation]]
            trust_domain = "partner.org"
            bundle_path = "partner.json"

            [[federation]]
            trust_domain = "other.org"
            bundle_path = "other.json"
            """,
            directory: directory
        )
        defer { agent.removeDirectory() }
        let bundles = try await WorkloadAPIClient(socketPath: agent.socketPath).fetchWITBundles().bundles
        #expect(Set(bundles.keys) == ["spiffe://example.org", "spiffe://partner.org"])
        let served = try #require(bundles["spiffe://partner.org"])
        let keys = try #require(
            (try JSONSerialization.jsonObject(with: Data(served.utf8)) as? [String: Any])?["keys"] as? [[String: Any]]
        )
        #expect(keys.map { $0["kid"] as? String } == ["wit-partner-1"])
        #expect(keys.first?["x"] as? String == witKey.x && keys.first?["y"] as? String == witKey.y)
        await agent.stop()
    }
}
