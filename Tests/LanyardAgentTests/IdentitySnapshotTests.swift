import Foundation
import IdentityCache
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Testing

@testable import LanyardAgent

/// The identity snapshot in `data_dir`: a restart serves what the agent served, at once, even while SPIRE Server is
/// unreachable, signs nothing again before it is due, and never uses a snapshot that is not exactly its own.
@Suite("Identity snapshot: restarts that keep serving", .serialized, .timeLimit(.minutes(5)))
struct IdentitySnapshotTests {
    static let rootEntry = WorkloadAPIIntegrationTests.rootEntry

    static func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the snapshot tests register an entry for uid 0 and need root")
        return false
    }

    static func leafSerial(_ response: WorkloadAPI_X509SVIDResponse) throws -> String {
        let svid = try #require(response.svids.first)
        return try Certificate.chain(derConcatenated: svid.x509Svid)[0].serialNumberHex
    }

    @Test("standalone: a restart serves the same SVID from a private snapshot instead of minting a new one")
    func standaloneRestart() async throws {
        guard Self.isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await TestAgent.start(Self.rootEntry, directory: directory)
        let before = try Self.leafSerial(try await first.client.fetchX509SVID())
        await first.stop()
        let path = directory + "/data/" + IdentitySnapshotFile.fileName
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)
        #expect(
            mode.intValue & 0o777 == 0o600,
            "the snapshot holds private keys: mode \(String(mode.intValue, radix: 8))"
        )

        let second = try await TestAgent.start(Self.rootEntry, directory: directory)
        let after = try Self.leafSerial(try await second.client.fetchX509SVID())
        await second.stop()
        #expect(after == before, "the restart minted a new SVID instead of serving the stored one")
    }

    @Test("fleet: restarted while SPIRE Server is down, the agent serves its SVIDs at once and syncs once it is back")
    func fleetRestartDuringOutage() async throws {
        guard Self.isRoot() else { return }
        let server = try await SPIREUpstreamIntegrationTests.startServer()
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = try SPIREUpstreamIntegrationTests.upstream(server, directory: directory)
        let first = try await TestAgent.start("", directory: directory, upstream: upstream)
        let before = try Self.leafSerial(try await first.client.fetchX509SVID())
        await first.stop()
        let signings = server.count("BatchNewX509SVID")
        await server.stop()

        // Without the snapshot this start would wait for the server for as long as it is down.
        let started = ContinuousClock.now
        let second = try await TestAgent.start("", directory: directory, upstream: upstream)
        let during = try Self.leafSerial(try await second.client.fetchX509SVID())
        print("fleet restart during an outage: served after \(ContinuousClock.now - started)")
        #expect(during == before, "the restarted agent did not serve the SVID it held")

        let syncs = server.count("SyncAuthorizedEntries") + server.count("GetAuthorizedEntries")
        try await server.start()
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                server.count("SyncAuthorizedEntries") + server.count("GetAuthorizedEntries") > syncs
            },
            "no sync after the server came back"
        )
        let after = try Self.leafSerial(try await second.client.fetchX509SVID())
        await second.stop()
        await server.stop()
        #expect(after == before, "an SVID that was not due was signed again")
        #expect(server.count("BatchNewX509SVID") == signings, "the restart made the server sign again")
    }

    @Test("a snapshot that is corrupt, for another trust domain or another agent is refused, set aside, and not served")
    func refusals() async throws {
        guard Self.isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try await TestAgent.start(Self.rootEntry, directory: directory)
        await agent.stop()
        let trustDomain = try TrustDomain("example.org")
        let file = IdentitySnapshotFile(directory: directory + "/data", trustDomain: trustDomain)
        let good = try #require(FileManager.default.contents(atPath: file.path))
        let snapshot = try #require(try file.load(agentID: nil))
        #expect(snapshot.entries.map(\.spiffeID.description) == ["spiffe://example.org/root-workload"])
        #expect(snapshot.svids.count == 1)

        // Taken in standalone mode, so not for any agent identity; nor for another trust domain.
        #expect(throws: IdentitySnapshotFile.Refusal.self) {
            try file.load(agentID: try SPIFFEID("spiffe://example.org/spire/agent/join_token/t"))
        }
        #expect(throws: IdentitySnapshotFile.Refusal.self) {
            try IdentitySnapshotFile(directory: file.directory, trustDomain: try TrustDomain("other.org"))
                .load(agentID: nil)
        }
        // Cut short, not JSON, or an SVID with a key that is not its certificate's.
        var json = try #require(try JSONSerialization.jsonObject(with: good) as? [String: Any])
        var svids = try #require(json["svids"] as? [[String: Any]])
        svids[0]["x509_svid_key"] = try PrivateKey(generating: .ecP256).pkcs8DER.base64EncodedString()
        json["svids"] = svids
        for bad in [
            good.prefix(good.count / 2), Data("garbage".utf8), try JSONSerialization.data(withJSONObject: json),
        ] {
            try bad.write(to: URL(fileURLWithPath: file.path))
            #expect(throws: IdentitySnapshotFile.Refusal.self) { try file.load(agentID: nil) }
        }

        // The agent with the last bad file: refused with its reason, moved aside, and a fresh SVID served.
        let logs = LogCapture()
        let restarted = try await TestAgent.start(Self.rootEntry, directory: directory, logs: logs)
        let served = try await restarted.client.fetchX509SVID()
        await restarted.stop()
        #expect(served.svids.count == 1)
        #expect(logs.all.contains { $0.contains("the identity snapshot is refused") && $0.contains("does not match") })
        let names = try FileManager.default.contentsOfDirectory(atPath: file.directory)
        #expect(names.contains { $0.hasPrefix(IdentitySnapshotFile.fileName + ".refused-") }, "\(names)")
        #expect(try file.load(agentID: nil) != nil, "the agent did not store a fresh snapshot")
    }
}
