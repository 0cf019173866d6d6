import Foundation
public import GRPCCore
public import GRPCNIOTransportHTTP2
public import LanyardProto
import SPIFFE

/// A Workload API client over a Unix socket, for the `lanyard api` commands and for tests.
public struct WorkloadAPIClient: Sendable {
    public static let defaultSocketPath = "/run/lanyard/public/api.sock"

    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The socket from `--socket`, else `SPIFFE_ENDPOINT_SOCKET` (`unix:///path`), else the default.
    public static func resolveSocketPath(explicit: String?, environment: [String: String]) throws -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        guard let value = environment["SPIFFE_ENDPOINT_SOCKET"], !value.isEmpty else { return defaultSocketPath }
        guard let url = URL(string: value), url.scheme == "unix" else {
            throw ClientError("SPIFFE_ENDPOINT_SOCKET \"\(value)\" must be a unix:///absolute/path URI")
        }
        guard url.host == nil || url.host == "", url.query == nil, url.fragment == nil, url.user == nil,
            url.path.hasPrefix("/")
        else {
            throw ClientError("SPIFFE_ENDPOINT_SOCKET \"\(value)\" must be a unix:///absolute/path URI")
        }
        return url.path
    }

    static let securityMetadata: Metadata = ["workload.spiffe.io": "true"]

    /// Runs `body` with a connected gRPC client for any service on the socket (SDS, for instance).
    public func withGRPC<Result: Sendable>(
        _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let transport = try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: socketPath),
            transportSecurity: .plaintext
        )
        return try await withGRPCClient(transport: transport) { client in try await body(client) }
    }

    /// Runs `body` with a connected generated client; the connection closes when `body` returns.
    public func withClient<Result: Sendable>(
        _ body: @Sendable (WorkloadAPI_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        try await withGRPC { client in try await body(WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)) }
    }

    /// The first X509-SVID response.
    public func fetchX509SVID() async throws -> WorkloadAPI_X509SVIDResponse {
        try await withClient { api in
            try await api.fetchX509SVID(WorkloadAPI_X509SVIDRequest(), metadata: Self.securityMetadata) { response in
                for try await message in response.messages { return message }
                throw ClientError("the stream ended without a response")
            }
        }
    }

    /// The first `count` X509-SVID responses of one stream.
    public func watchX509SVID(
        count: Int,
        onMessage: @Sendable @escaping (WorkloadAPI_X509SVIDResponse) -> Void = { _ in }
    ) async throws -> [WorkloadAPI_X509SVIDResponse] {
        try await withClient { api in
            try await api.fetchX509SVID(WorkloadAPI_X509SVIDRequest(), metadata: Self.securityMetadata) { response in
                var messages: [WorkloadAPI_X509SVIDResponse] = []
                for try await message in response.messages {
                    messages.append(message)
                    onMessage(message)
                    if messages.count == count { break }
                }
                return messages
            }
        }
    }

    /// Succeeds when the agent answers a Workload API call, whatever the answer; a denial still proves it serves.
    public func ping() async throws {
        do {
            _ = try await fetchX509Bundles()
        } catch let error as RPCError
            where [.permissionDenied, .invalidArgument, .unauthenticated].contains(error.code)
        {
            return
        }
    }

    public func fetchX509Bundles() async throws -> WorkloadAPI_X509BundlesResponse {
        try await withClient { api in
            try await api.fetchX509Bundles(WorkloadAPI_X509BundlesRequest(), metadata: Self.securityMetadata) {
                response in
                for try await message in response.messages { return message }
                throw ClientError("the stream ended without a response")
            }
        }
    }

    public func fetchJWTBundles() async throws -> WorkloadAPI_JWTBundlesResponse {
        try await withClient { api in
            try await api.fetchJWTBundles(WorkloadAPI_JWTBundlesRequest(), metadata: Self.securityMetadata) {
                response in
                for try await message in response.messages { return message }
                throw ClientError("the stream ended without a response")
            }
        }
    }

    /// The first message of `FetchWITBundles`.
    public func fetchWITBundles() async throws -> WorkloadAPI_WITBundlesResponse {
        try await withClient { api in
            try await api.fetchWITBundles(WorkloadAPI_WITBundlesRequest(), metadata: Self.securityMetadata) {
                response in
                for try await message in response.messages { return message }
                throw ClientError("the stream ended without a response")
            }
        }
    }

    /// The first message of `FetchWITSVID` (all identities, or only `spiffeID`'s).
    public func fetchWITSVID(spiffeID: String? = nil) async throws -> WorkloadAPI_WITSVIDResponse {
        var request = WorkloadAPI_WITSVIDRequest()
        request.spiffeID = spiffeID ?? ""
        let message = request
        return try await withClient { api in
            try await api.fetchWITSVID(message, metadata: Self.securityMetadata) { response in
                for try await message in response.messages { return message }
                throw ClientError("the stream ended without a response")
            }
        }
    }

    public func fetchJWTSVID(audience: [String], spiffeID: String? = nil) async throws -> WorkloadAPI_JWTSVIDResponse {
        var request = WorkloadAPI_JWTSVIDRequest()
        request.audience = audience
        request.spiffeID = spiffeID ?? ""
        let message = request
        return try await withClient { api in try await api.fetchJWTSVID(message, metadata: Self.securityMetadata) }
    }

    public func validateJWTSVID(token: String, audience: String) async throws -> WorkloadAPI_ValidateJWTSVIDResponse {
        var request = WorkloadAPI_ValidateJWTSVIDRequest()
        request.svid = token
        request.audience = audience
        let message = request
        return try await withClient { api in try await api.validateJWTSVID(message, metadata: Self.securityMetadata) }
    }
}

/// A client-side error with a message for the terminal.
public struct ClientError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
