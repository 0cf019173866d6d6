import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto
import SwiftProtobuf

/// The floor for the RPC figures: the same Workload API messages on the same gRPC stack over a Unix socket, answered
/// from a canned response — no attestation, no cache, no signing. Run as its own process, like the agent.
struct FloorService: WorkloadAPI_SpiffeWorkloadAPI.SimpleServiceProtocol {
    let jwt: WorkloadAPI_JWTSVIDResponse
    let x509: WorkloadAPI_X509SVIDResponse

    func fetchX509SVID(
        request: WorkloadAPI_X509SVIDRequest,
        response: RPCWriter<WorkloadAPI_X509SVIDResponse>,
        context: ServerContext
    ) async throws {
        try await response.write(x509)
        // Like the agent, the stream stays open until the client leaves.
        try await withTaskCancellationHandler {
            try await Task.sleep(for: .seconds(3600))
        } onCancel: {
        }
    }

    func fetchX509Bundles(
        request: WorkloadAPI_X509BundlesRequest,
        response: RPCWriter<WorkloadAPI_X509BundlesResponse>,
        context: ServerContext
    ) async throws {}

    func fetchJWTSVID(
        request: WorkloadAPI_JWTSVIDRequest,
        context: ServerContext
    ) async throws -> WorkloadAPI_JWTSVIDResponse { jwt }

    func fetchJWTBundles(
        request: WorkloadAPI_JWTBundlesRequest,
        response: RPCWriter<WorkloadAPI_JWTBundlesResponse>,
        context: ServerContext
    ) async throws {}

    func validateJWTSVID(
        request: WorkloadAPI_ValidateJWTSVIDRequest,
        context: ServerContext
    ) async throws -> WorkloadAPI_ValidateJWTSVIDResponse {
        WorkloadAPI_ValidateJWTSVIDResponse()
    }

    /// The WIT-SVID profile is not benchmarked yet.
    func fetchWITSVID(
        request: WorkloadAPI_WITSVIDRequest,
        response: RPCWriter<WorkloadAPI_WITSVIDResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "floor")
    }

    func fetchWITBundles(
        request: WorkloadAPI_WITBundlesRequest,
        response: RPCWriter<WorkloadAPI_WITBundlesResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "floor")
    }

    /// Serves on `socketPath` until killed, answering with responses the size of the agent's; with `sdsResponse`
    /// (a serialized `DiscoveryResponse` the agent sent), SDS `StreamSecrets` too, answering every request with it.
    static func serve(socketPath: String, sdsResponse: String? = nil) async throws {
        var jwt = WorkloadAPI_JWTSVIDResponse()
        var svid = WorkloadAPI_JWTSVID()
        svid.spiffeID = "spiffe://example.org/bench/0"
        svid.svid = String(repeating: "x", count: 420)
        jwt.svids = [svid]
        var x509 = WorkloadAPI_X509SVIDResponse()
        var x509SVID = WorkloadAPI_X509SVID()
        x509SVID.spiffeID = "spiffe://example.org/bench/0"
        x509SVID.x509Svid = Data(repeating: 1, count: 600)
        x509SVID.x509SvidKey = Data(repeating: 2, count: 138)
        x509SVID.bundle = Data(repeating: 3, count: 500)
        x509.svids = [x509SVID]
        unlink(socketPath)
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath),
            transportSecurity: .plaintext
        )
        var services: [any RegistrableRPCService] = [FloorService(jwt: jwt, x509: x509)]
        if let sdsResponse {
            let canned = try Envoy_Service_Discovery_V3_DiscoveryResponse(
                serializedBytes: try Data(contentsOf: URL(fileURLWithPath: sdsResponse))
            )
            services.append(FloorSDSService(response: canned))
        }
        let server = GRPCServer(transport: transport, services: services)
        try await server.serve()
    }
}

/// The SDS floor: `StreamSecrets` answering each request with one canned response (the agent's own, captured by the
/// benchmark), and nothing else.
struct FloorSDSService: Envoy_Service_Secret_V3_SecretDiscoveryService.SimpleServiceProtocol {
    let response: Envoy_Service_Discovery_V3_DiscoveryResponse

    func streamSecrets(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
        response writer: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
        context: ServerContext
    ) async throws {
        for try await _ in request { try await writer.write(response) }
    }

    func deltaSecrets(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "floor")
    }

    func fetchSecrets(
        request: Envoy_Service_Discovery_V3_DiscoveryRequest,
        context: ServerContext
    ) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse { response }
}
