import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardAgent
import LanyardProto
import SPIFFECrypto
import SwiftProtobuf

/// The SPIFFE Broker API as a node proxy uses it: a `SubscribeToX509SVID` stream for a workload by PID over the
/// Broker Endpoint's mutual TLS, timed to its first message, against the floor of the Workload API's
/// `FetchX509SVID` for the same SVID on the same agent (the same attestation and cache, without the TLS record layer
/// and the reference to resolve). Handshakes happen outside the timing: a broker holds its connection.
extension Benchmarks {
    mutating func broker() async throws {
        say("Broker API SubscribeToX509SVID by PID (mTLS) against the Workload API's FetchX509SVID, same agent")
        let home = try fresh("broker")
        let brokerSocket = home + "/broker/broker.sock"
        let config =
            Self.config(home, entries: 1) + """

                [broker]
                socket_path = "\(brokerSocket)"
                authorized_brokers = ["spiffe://example.org/bench/0"]
                """
        let agent = try await AgentProcess(binary: lanyard, directory: home, config: config)
        defer { agent.stop() }
        guard let svid = try await WorkloadAPIClient(socketPath: agent.socketPath).fetchX509SVID().svids.first else {
            throw BenchError("the agent issued no SVID for the broker")
        }
        // Alternating rounds, so drift in the machine's speed falls on both alike.
        let count = quick ? 200 : 1200
        var brokerSample = LatencySample(), floorSample = LatencySample()
        for _ in 0..<4 {
            brokerSample.nanoseconds +=
                try await Self.firstBrokerX509Messages(socket: brokerSocket, presenting: svid, count: count / 4)
                .nanoseconds
            floorSample.nanoseconds += try await Self.firstX509Message(socket: agent.socketPath, count: count / 4)
                .nanoseconds
        }
        let p50 = brokerSample.percentile(0.5), floorP50 = floorSample.percentile(0.5)
        add(
            Figure(
                name: "Broker SubscribeToX509SVID by PID, first message p50",
                value: p50,
                unit: "us",
                floor: floorP50,
                ratio: p50 / floorP50,
                target: "<= 2x Workload API",
                met: p50 <= 2 * floorP50
            )
        )
    }

    /// Time to the first message of `count` new `SubscribeToX509SVID` streams for this process's PID, one at a time,
    /// at most 150 per connection (the rapid-reset limit, as for `FetchX509SVID`), presenting `svid`.
    static func firstBrokerX509Messages(
        socket: String,
        presenting svid: WorkloadAPI_X509SVID,
        count: Int
    ) async throws -> LatencySample {
        let chain = try Certificate.chain(derConcatenated: svid.x509Svid)
        let keyPEM = Array(try PrivateKey(pkcs8DER: svid.x509SvidKey).pemEncoded.utf8)
        let roots = try Certificate.chain(derConcatenated: svid.bundle)
        var request = Spiffe_Broker_SubscribeToX509SVIDRequest()
        request.reference.reference = try Google_Protobuf_Any(
            message: Spiffe_Broker_WorkloadPIDReference.with { $0.pid = getpid() }
        )
        let metadata: Metadata = ["broker.spiffe.io": "true"]
        var sample = LatencySample()
        var remaining = count
        var warmUp = 20
        while remaining > 0 {
            let batch = min(remaining, 150 - warmUp)
            let warm = warmUp
            let transport = try HTTP2ClientTransport.Posix(
                target: .unixDomainSocket(path: socket),
                transportSecurity: .tls { tls in
                    tls.certificateChain = chain.map { .bytes(Array($0.derEncoded), format: .der) }
                    tls.privateKey = .bytes(keyPEM, format: .pem)
                    tls.trustRoots = .certificates(roots.map { .bytes(Array($0.derEncoded), format: .der) })
                    tls.serverCertificateVerification = .noHostnameVerification
                }
            )
            let part = try await withGRPCClient(transport: transport) { client in
                let api = Spiffe_Broker_API.Client(wrapping: client)
                var sample = LatencySample()
                for index in 0..<(warm + batch) {
                    let started = ContinuousClock.now
                    let received = try await api.subscribeToX509SVID(request, metadata: metadata) { response in
                        for try await message in response.messages { return message.svids.count }
                        return 0
                    }
                    if index >= warm { sample.record(ContinuousClock.now - started) }
                    guard received > 0 else { throw BenchError("the broker stream sent no x509-svid") }
                }
                return sample
            }
            sample.nanoseconds += part.nanoseconds
            remaining -= batch
            warmUp = 5
        }
        return sample
    }
}
