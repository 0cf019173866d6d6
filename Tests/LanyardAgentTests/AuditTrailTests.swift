import Foundation
import GRPCCore
import LanyardProto
import LanyardTestSupport
import SPIFFE
import Testing

@testable import LanyardAgent

/// `[audit] enabled` and `log_selectors` against a real agent: records counted exactly (one per identity per
/// connection), carrying no key or token, and selectors in logs only where the operator allows them.
@Suite("Audit trail and log_selectors", .serialized, .timeLimit(.minutes(5)))
struct AuditTrailTests {
    static let entries = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:0"]

        [[entries]]
        spiffe_id = "spiffe://example.org/root-admin"
        selectors = ["unix:uid:0", "unix:gid:0"]
        hint = "admin"
        """

    @Test("one record per identity per connection, for X509-SVIDs and JWT-SVIDs, with no key or token in it")
    func countsRecords() async throws {
        guard getuid() == 0 else {
            print("skipped: the audit test registers entries for uid 0 and needs root")
            return
        }
        let audit = LogCapture()
        let agent = try await TestAgent.start(
            "[audit]\nenabled = true\n\n" + Self.entries,
            topLevel: "log_selectors = [\"unix:uid\"]",
            auditLogs: audit
        )
        defer { agent.removeDirectory() }
        // One connection: two X509 fetches and two JWT fetches of the same audience.
        let secrets: [String] = try await agent.client.withClient { api in
            let metadata: GRPCCore.Metadata = ["workload.spiffe.io": "true"]
            var secrets: [String] = []
            for _ in 0..<2 {
                let response = try await api.fetchX509SVID(.init(), metadata: metadata) { response in
                    for try await message in response.messages { return message }
                    return WorkloadAPI_X509SVIDResponse()
                }
                #expect(response.svids.count == 2)
                secrets += response.svids.map { $0.x509SvidKey.base64EncodedString() }
                var request = WorkloadAPI_JWTSVIDRequest()
                request.audience = ["db"]
                let jwt = try await api.fetchJWTSVID(request, metadata: metadata)
                secrets += jwt.svids.map(\.svid)
            }
            return secrets
        }
        let records = audit.all.filter { $0.contains("identity issued") }
        #expect(records.filter { $0.contains("svid.kind=x509-svid") }.count == 2, "\(records)")
        #expect(records.filter { $0.contains("svid.kind=jwt-svid") }.count == 2, "\(records)")
        // A second connection is a new caller: its identities are recorded again.
        _ = try await agent.client.fetchX509SVID()
        let after = audit.all.filter { $0.contains("identity issued") }
        #expect(after.filter { $0.contains("svid.kind=x509-svid") }.count == 4, "\(after)")
        for record in after {
            #expect(record.contains("caller.pid=") && record.contains("caller.uid=0") && record.contains("entry.id="))
            #expect(record.contains("caller.start_ticks="), "\(record)")
            #expect(record.contains("selectors=[unix:uid:0]"), "only log_selectors' prefixes: \(record)")
            for secret in secrets where !secret.isEmpty {
                #expect(!record.contains(secret), "a key or token in an audit record")
                #expect(!record.contains(String(secret.prefix(24))), "part of a key or token in an audit record")
            }
        }
        #expect(after.contains { $0.contains("svid.serial=") })
        await agent.stop()
    }

    @Test("an SDS stream's certificates are recorded once, the bundle-only answer not at all")
    func recordsSDS() async throws {
        guard getuid() == 0 else {
            print("skipped: the audit test registers entries for uid 0 and needs root")
            return
        }
        let audit = LogCapture()
        let agent = try await TestAgent.start("[audit]\nenabled = true\n\n" + Self.entries, auditLogs: audit)
        defer { agent.removeDirectory() }
        let sent = try await agent.streamSecrets { session in
            session.send(request(["ROOTCA"]))
            let bundleOnly = try await session.next()
            session.send(request(["ROOTCA", "default"], version: bundleOnly.versionInfo, nonce: bundleOnly.nonce))
            let withCertificate = try await session.next()
            return try secrets(withCertificate).map(\.name)
        }
        #expect(sent == ["ROOTCA", "default"])
        let records = audit.all.filter { $0.contains("identity issued") }
        #expect(records.count == 1, "\(records)")
        #expect(records.first?.contains("spiffe.id=spiffe://example.org/root-workload") == true, "\(records)")
        await agent.stop()
    }

    @Test("no identity issued is logged with only the selectors log_selectors allows")
    func refusalLogsAllowedSelectors() async throws {
        guard getuid() == 0 else {
            print("skipped: the refusal test runs a client as another uid and needs root")
            return
        }
        let logs = LogCapture()
        let agent = try await TestAgent.start(Self.entries, logs: logs, topLevel: "log_selectors = [\"unix:uid\"]")
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: agent.directory)
        _ = try await TestAdminClient(socketPath: agent.adminSocketPath).logLevel(set: "info")
        let refused = try await cli.run(["api", "fetch", "x509", "--socket", agent.socketPath], uid: 40021, gid: 40021)
        #expect(refused.status == 1)
        let line = try #require(logs.all.first { $0.contains("no identity issued") }, "\(logs.all.suffix(3))")
        #expect(line.contains("unix:uid:40021"), "\(line)")
        #expect(!line.contains("unix:gid:40021") && line.contains("hidden by log_selectors"), "\(line)")
        await agent.stop()
    }
}
