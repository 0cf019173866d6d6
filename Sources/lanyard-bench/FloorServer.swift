import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto

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

    /// Serves on `socketPath` until killed, answering with responses the size of the agent's.
    static func serve(socketPath: String) async throws {
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
        let server = GRPCServer(transport: transport, services: [FloorService(jwt: jwt, x509: x509)])
        try await server.serve()
    }
}
