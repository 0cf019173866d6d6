import Foundation
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Testing

@testable import LanyardAgent

/// `rebootstrap_mode` against the fake SPIRE Server over mTLS: a server whose CA was replaced, and a server that
/// evicted the agent. A re-attestable agent bootstraps again after `rebootstrap_delay`, only through its configured
/// bootstrap source; a join-token agent, or `never`, keeps refusing and says what the operator must do.
@Suite("Rebootstrap in fleet mode", .serialized, .timeLimit(.minutes(5)))
struct RebootstrapTests {
    /// An x509pop node certificate and key from `server`'s node CA, and the upstream section using them.
    static func x509popUpstream(
        _ server: FakeSPIREServer,
        directory: String,
        mode: String,
        delay: String = "1s"
    ) throws -> String {
        let key = try PrivateKey(generating: .ecP256)
        let id = try SPIFFEID("spiffe://nodes.example/node-\(UUID().uuidString.prefix(6))")
        let chain = try server.x509popAuthority.issueX509SVID(
            csr: CertificateSigningRequest(privateKey: key, spiffeID: id),
            spiffeID: id,
            ttl: .seconds(3600),
            now: Date()
        )
        try Data(chain.map(\.pemEncoded).joined().utf8).write(to: URL(fileURLWithPath: directory + "/node.crt"))
        try Data(key.pemEncoded.utf8).write(to: URL(fileURLWithPath: directory + "/node.key"))
        let attestor = """
            node_attestor = "x509pop"
            x509pop_certificate_path = "\(directory)/node.crt"
            x509pop_private_key_path = "\(directory)/node.key"
            rebootstrap_mode = "\(mode)"
            rebootstrap_delay = "\(delay)"
            """
        return try SPIREUpstreamIntegrationTests.upstream(server, directory: directory, attestor: attestor)
    }

    /// The CA the agent's bundle holds, as the Workload API hands it out.
    static func servedBundle(_ agent: TestAgent) async throws -> Data {
        try #require(try await agent.client.fetchX509SVID().svids.first).bundle
    }

    @Test(
        "auto, x509pop: the server's CA is replaced; the agent bootstraps again only once its bootstrap bundle trusts the new server"
    )
    func caReplaced() async throws {
        guard SPIREUpstreamIntegrationTests.requireRoot() else { return }
        let old = try await SPIREUpstreamIntegrationTests.startServer()
        try old.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            logs: logs,
            upstream: try Self.x509popUpstream(old, directory: directory, mode: "auto")
        )
        #expect(try await Self.servedBundle(agent) == old.authority.certificate.derEncoded)

        // The same address, a new CA that trusts the same node certificates.
        await old.stop()
        let replacement = try FakeSPIREServer(x509popAuthority: old.x509popAuthority)
        try replacement.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        try await replacement.start(onPort: old.port)

        // The bootstrap bundle still holds the old CA: past the delay the agent tries, refuses the new server
        // before sending anything, and keeps serving what it holds.
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                logs.all.contains { $0.contains("bootstrapping again") }
                    && logs.all.contains { $0.contains("cannot bootstrap again") }
            },
            "no rebootstrap attempt: \(logs.all.suffix(8))"
        )
        #expect(replacement.count("AttestAgent") == 0, "attested to a server the bootstrap bundle does not trust")
        #expect(try await Self.servedBundle(agent) == old.authority.certificate.derEncoded)

        // The operator publishes the new CA where the agent bootstraps from: it attests to the new server, and its
        // workloads get SVIDs under the new CA.
        try Data(replacement.bundlePEM.utf8).write(to: URL(fileURLWithPath: directory + "/bootstrap.pem"))
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                // The new server's entry replaces the old one: until its SVID is minted the caller has none.
                (try? await Self.servedBundle(agent)) == replacement.authority.certificate.derEncoded
            },
            "the agent did not move to the new server: \(logs.all.suffix(5))"
        )
        #expect(replacement.count("AttestAgent") == 1)
        await agent.stop()
        await replacement.stop()
    }

    @Test("a join-token agent whose server's CA was replaced keeps refusing it and says what the operator must do")
    func joinTokenCannotRebootstrap() async throws {
        guard SPIREUpstreamIntegrationTests.requireRoot() else { return }
        let old = try await SPIREUpstreamIntegrationTests.startServer()
        try old.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogCapture()
        let upstream = try SPIREUpstreamIntegrationTests.upstream(
            old,
            directory: directory,
            attestor:
                "node_attestor = \"join_token\"\njoin_token = \"token-1\"\nrebootstrap_mode = \"auto\"\nrebootstrap_delay = \"1s\""
        )
        let agent = try await TestAgent.start("", directory: directory, logs: logs, upstream: upstream)
        let before = try await agent.client.fetchX509SVID()
        await old.stop()
        let replacement = try FakeSPIREServer()
        replacement.addJoinToken("token-1")
        try await replacement.start(onPort: old.port)
        try Data(replacement.bundlePEM.utf8).write(to: URL(fileURLWithPath: directory + "/bootstrap.pem"))
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                logs.all.contains {
                    $0.contains("cannot attest again by itself") && $0.contains("spire-server token generate")
                }
            },
            "\(logs.all.suffix(5))"
        )
        #expect(replacement.count("AttestAgent") == 0)
        let during = try await agent.client.fetchX509SVID()
        #expect(during.svids.first?.x509Svid == before.svids.first?.x509Svid, "the held SVID is still served")
        await agent.stop()
        await replacement.stop()
    }

    @Test("an evicted agent attests again after rebootstrap_delay in auto mode, and only says so in never mode")
    func evicted() async throws {
        guard SPIREUpstreamIntegrationTests.requireRoot() else { return }
        for mode in ["never", "auto"] {
            let server = try await SPIREUpstreamIntegrationTests.startServer()
            try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
            let directory = TestAgent.makeDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let logs = LogCapture()
            let agent = try await TestAgent.start(
                "",
                directory: directory,
                logs: logs,
                upstream: try Self.x509popUpstream(server, directory: directory, mode: mode)
            )
            let agentID = try #require(server.agentIDs.first)
            server.evictAgent(agentID)
            if mode == "never" {
                #expect(
                    try await SPIREUpstreamIntegrationTests.eventually {
                        logs.all.contains {
                            $0.contains("refused the agent svid") && $0.contains("rebootstrap_mode is \"never\"")
                        }
                    },
                    "\(logs.all.suffix(5))"
                )
                try await Task.sleep(for: .seconds(1.5))
                #expect(server.count("AttestAgent") == 1, "attested again with rebootstrap_mode = never")
            } else {
                #expect(
                    try await SPIREUpstreamIntegrationTests.eventually {
                        server.count("AttestAgent") == 2 && server.agentIDs == [agentID]
                    },
                    "\(logs.all.suffix(5))"
                )
                let entriesSynced = server.count("SyncAuthorizedEntries")
                #expect(
                    try await SPIREUpstreamIntegrationTests.eventually {
                        server.count("SyncAuthorizedEntries") > entriesSynced
                    },
                    "syncs did not resume after attesting again"
                )
            }
            #expect(try await agent.client.fetchX509SVID().svids.count == 1)
            await agent.stop()
            await server.stop()
        }
    }
}
