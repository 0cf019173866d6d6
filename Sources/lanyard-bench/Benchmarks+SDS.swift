import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardAgent
import LanyardProto
import SwiftProtobuf

/// SDS as an Istio sidecar uses it: a new `StreamSecrets` stream asking for `default` (the workload's certificate and
/// key), timed to its first response, against a floor that answers with the agent's own response, canned.
extension Benchmarks {
    typealias DiscoveryRequest = Envoy_Service_Discovery_V3_DiscoveryRequest
    typealias DiscoveryResponse = Envoy_Service_Discovery_V3_DiscoveryResponse

    mutating func sds() async throws {
        say("SDS StreamSecrets first response (Istio's 'default'), agent and a canned floor, separate processes")
        let home = try fresh("sds")
        let agent = try await AgentProcess(binary: lanyard, directory: home, config: Self.config(home, entries: 1))
        defer { agent.stop() }
        let (_, captured) = try await Self.firstSDSResponses(socket: agent.socketPath, count: 1)
        guard let secret = captured.resources.first, secret.typeURL.hasSuffix("Secret") else {
            throw BenchError("the agent's SDS response holds no secret")
        }
        let cannedPath = home + "/sds-response.bin"
        let canned: Data = try captured.serializedBytes()
        try canned.write(to: URL(fileURLWithPath: cannedPath))
        let floor = try await FloorProcess(directory: try fresh("sds-floor"), sdsResponse: cannedPath)
        defer { floor.stop() }
        // Alternating rounds, so drift in the machine's speed falls on both alike.
        let count = quick ? 200 : 1200
        var agentSample = LatencySample(), floorSample = LatencySample()
        for _ in 0..<4 {
            agentSample.nanoseconds += try await Self.firstSDSResponses(socket: agent.socketPath, count: count / 4)
                .0.nanoseconds
            floorSample.nanoseconds += try await Self.firstSDSResponses(socket: floor.socketPath, count: count / 4)
                .0.nanoseconds
        }
        let p50 = agentSample.percentile(0.5), floorP50 = floorSample.percentile(0.5)
        add(
            Figure(
                name: "SDS StreamSecrets first response p50 (\(canned.count) bytes)",
                value: p50,
                unit: "us",
                floor: floorP50,
                ratio: p50 / floorP50,
                target: "<= 1.5x floor",
                met: p50 <= 1.5 * floorP50
            )
        )
    }

    /// Time to the first response of `count` new `StreamSecrets` streams asking for `default`, one at a time, at
    /// most 150 per connection (the rapid-reset limit, as for FetchX509SVID); the last response.
    static func firstSDSResponses(socket: String, count: Int) async throws -> (LatencySample, DiscoveryResponse) {
        var request = DiscoveryRequest()
        request.resourceNames = ["default"]
        request.typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
        request.node.id = "sidecar~10.0.0.1~web.shop~shop.svc.cluster.local"
        let first = request
        var sample = LatencySample()
        var last = DiscoveryResponse()
        var remaining = count
        var warmUp = min(20, count)
        while remaining > 0 {
            let batch = min(remaining, 150 - warmUp)
            let warm = warmUp
            let (part, response) = try await WorkloadAPIClient(socketPath: socket).withGRPC { grpc in
                let sds = Envoy_Service_Secret_V3_SecretDiscoveryService.Client(wrapping: grpc)
                var sample = LatencySample()
                var last = DiscoveryResponse()
                for index in 0..<(warm + batch) {
                    let started = ContinuousClock.now
                    let response = try await sds.streamSecrets(
                        requestProducer: { writer in
                            try await writer.write(first)
                            // Istio keeps the stream open; the client leaves once it has the answer.
                            try await Task.sleep(for: .seconds(3600))
                        },
                        onResponse: { response in
                            for try await message in response.messages { return message }
                            throw BenchError("the SDS stream ended without a response")
                        }
                    )
                    if index >= warm { sample.record(ContinuousClock.now - started) }
                    last = response
                }
                return (sample, last)
            }
            sample.nanoseconds += part.nanoseconds
            last = response
            remaining -= batch
            warmUp = 5
        }
        return (sample, last)
    }
}
