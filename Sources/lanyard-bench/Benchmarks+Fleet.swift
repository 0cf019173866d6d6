import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import Upstream

/// Fleet mode: a FetchJWTSVID cache miss (a new audience each call) through the agent, which mints it with
/// `NewJWTSVID` over its shared mTLS connection and checks it, next to the floor — the same `NewJWTSVID` call made
/// directly over one warm mTLS connection presenting the agent's own SVID. The fake SPIRE server runs in this
/// process for both.
extension Benchmarks {
    mutating func fleet() async throws {
        say("fleet mode: FetchJWTSVID cache miss against one NewJWTSVID on a warm mTLS connection (fake SPIRE server)")
        let home = try fresh("fleet")
        let server = try FakeSPIREServer(jwtSVIDTTL: .seconds(3600))
        server.addJoinToken("bench-token")
        let entryID = try server.addEntry(spiffeID: "spiffe://example.org/bench/0", selectors: ["unix:uid:\(Self.uid)"])
        try await server.start()
        defer { Task { await server.stop() } }
        try server.bundlePEM.write(toFile: home + "/bootstrap.pem", atomically: true, encoding: .utf8)
        let config = """
            trust_domain = "example.org"
            data_dir = "\(home)/data"
            log_level = "warning"

            [workload_api]
            socket_path = "\(home)/api.sock"

            [health]
            listen = ""

            [admin]
            socket_path = ""

            [upstream.spire]
            server_address = "127.0.0.1:\(server.port)"
            trust_bundle_path = "\(home)/bootstrap.pem"
            node_attestor = "join_token"
            join_token = "bench-token"
            """
        let agent = try await AgentProcess(binary: lanyard, directory: home, config: config)
        defer { agent.stop() }
        guard let identity = try AgentIdentity.load(directory: home + "/data/agent", trustDomain: server.trustDomain)
        else { throw BenchError("the agent stored no identity") }

        let calls = quick ? 100 : 600
        var agentSample = LatencySample(), floorSample = LatencySample()
        var audience = 0
        for _ in 0..<4 {
            let first = audience
            agentSample.nanoseconds += try await WorkloadAPIClient(socketPath: agent.socketPath).withClient { api in
                let metadata: Metadata = ["workload.spiffe.io": "true"]
                var sample = LatencySample()
                for index in 0..<(calls / 4 + 10) {
                    var request = WorkloadAPI_JWTSVIDRequest()
                    request.audience = ["miss-\(first + index)"]
                    let started = ContinuousClock.now
                    let response = try await api.fetchJWTSVID(request, metadata: metadata)
                    if index >= 10 { sample.record(ContinuousClock.now - started) }
                    guard response.svids.count == 1 else { throw BenchError("no jwt-svid returned") }
                }
                return sample
            }.nanoseconds
            audience += calls / 4 + 10
            floorSample.nanoseconds += try await Self.directNewJWTSVID(
                server: server,
                identity: identity,
                entryID: entryID,
                calls: calls / 4
            ).nanoseconds
        }
        let mints = server.count("NewJWTSVID")
        guard mints >= audience else { throw BenchError("only \(mints) NewJWTSVID calls for \(audience) misses") }
        let p50 = agentSample.percentile(0.5), floorP50 = floorSample.percentile(0.5)
        add(
            Figure(
                name: "FetchJWTSVID cache miss p50, fleet mode (floor: one NewJWTSVID on a warm mTLS connection)",
                value: p50,
                unit: "us",
                floor: floorP50,
                ratio: p50 / floorP50,
                target: "<= 1.3x floor",
                met: p50 <= 1.3 * floorP50
            )
        )
        add(
            Figure(
                name: "mTLS connections the agent opened to the server (attestation + calls)",
                value: Double(server.connectionCount - 4),
                unit: "connections",
                target: "2",
                met: server.connectionCount - 4 == 2
            )
        )
    }

    /// `calls` NewJWTSVID calls (after 10 unmeasured) on one mTLS connection presenting `identity`, the floor.
    static func directNewJWTSVID(
        server: FakeSPIREServer,
        identity: AgentIdentity,
        entryID: String,
        calls: Int
    ) async throws -> LatencySample {
        let keyPEM = Array(try identity.svid.privateKey.pemEncoded.utf8)
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: "127.0.0.1", port: server.port),
            transportSecurity: .tls { tls in
                tls.certificateChain = identity.svid.certificates.map { .bytes(Array($0.derEncoded), format: .der) }
                tls.privateKey = .bytes(keyPEM, format: .pem)
                tls.trustRoots = .certificates([.bytes(Array(server.authority.certificate.derEncoded), format: .der)])
                tls.serverCertificateVerification = .noHostnameVerification
            }
        )
        return try await withGRPCClient(transport: transport) { client in
            let svid = Spire_Api_Server_Svid_V1_SVID.Client(wrapping: client)
            var sample = LatencySample()
            for index in 0..<(calls + 10) {
                var request = Spire_Api_Server_Svid_V1_NewJWTSVIDRequest()
                request.entryID = entryID
                request.audience = ["floor-\(index)"]
                let started = ContinuousClock.now
                let response = try await svid.newJWTSVID(request)
                if index >= 10 { sample.record(ContinuousClock.now - started) }
                guard !response.svid.token.isEmpty else { throw BenchError("the server sent no token") }
            }
            return sample
        }
    }
}
