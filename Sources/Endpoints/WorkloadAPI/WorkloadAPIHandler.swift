import Foundation
import GRPCCore
import LanyardProto
import Logging
import SPIFFE
import SwiftProtobuf
import Timing

/// The SPIFFE Workload API (`SpiffeWorkloadAPI`), wire-compatible with SPIRE Agent.
///
/// Every call needs the `workload.spiffe.io: true` header (`INVALID_ARGUMENT` otherwise), and the kernel's peer
/// credentials injected by ``PeerCredentialHandler`` (the call fails closed without them). Status codes are SPIRE's:
/// no identity → `PERMISSION_DENIED` "no identity issued", attestation failure → `UNAVAILABLE`, a caller that
/// exited or whose PID was reused → `UNAUTHENTICATED`.
struct WorkloadAPIHandler: WorkloadAPI_SpiffeWorkloadAPI.ServiceProtocol {
    static let securityHeader = "workload.spiffe.io"
    /// Audiences one `FetchJWTSVID` may ask for, and the longest audience: real clients ask for one or two short
    /// ones (a URL, a service name), and every distinct set is a token the agent signs and caches.
    static let maximumAudiences = 32
    static let maximumAudienceLength = 1024
    /// The longest token `ValidateJWTSVID` takes; JWT-SVIDs are well under a kilobyte.
    static let maximumTokenLength = 64 << 10

    let backend: any WorkloadAPIBackend
    let logger: Logger
    let authenticator: CallerAuthenticator
    /// Lets callers without an identity read the bundles (`allow_unauthenticated_verifiers`), as SPIRE does.
    let allowUnauthenticatedVerifiers: Bool
    /// The agent's clock: WIT-SVID streams wake on it to send renewed SVIDs.
    let clock: any AgentClock

    init(
        backend: any WorkloadAPIBackend,
        callers: ConnectedCallers,
        logger: Logger,
        allowUnauthenticatedVerifiers: Bool = false,
        clock: any AgentClock = SystemClock()
    ) {
        self.clock = clock
        self.backend = backend
        self.logger = logger
        self.authenticator = CallerAuthenticator(backend: backend, callers: callers, logger: logger)
        self.allowUnauthenticatedVerifiers = allowUnauthenticatedVerifiers
    }

    func fetchX509SVID(
        request: ServerRequest<WorkloadAPI_X509SVIDRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<WorkloadAPI_X509SVIDResponse> {
        let caller = try await attest(request.metadata)
        return Self.stream(
            backend,
            authenticator,
            caller,
            requireIdentity: true,
            handsSVIDs: true,
            Self.x509SVIDResponse
        )
    }

    func fetchX509Bundles(
        request: ServerRequest<WorkloadAPI_X509BundlesRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<WorkloadAPI_X509BundlesResponse> {
        let caller = try await attest(request.metadata)
        return Self.stream(backend, authenticator, caller, requireIdentity: !allowUnauthenticatedVerifiers) {
            update in
            var response = WorkloadAPI_X509BundlesResponse()
            response.bundles = Dictionary(uniqueKeysWithValues: update.x509Bundles.map { ($0.key.idString, $0.value) })
            return response
        }
    }

    func fetchJWTBundles(
        request: ServerRequest<WorkloadAPI_JWTBundlesRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<WorkloadAPI_JWTBundlesResponse> {
        let caller = try await attest(request.metadata)
        return Self.stream(backend, authenticator, caller, requireIdentity: !allowUnauthenticatedVerifiers) {
            update in
            var response = WorkloadAPI_JWTBundlesResponse()
            response.bundles = Dictionary(uniqueKeysWithValues: update.jwtBundles.map { ($0.key.idString, $0.value) })
            return response
        }
    }

    /// A server stream that sends `makeResponse(update)` for every update, skipping a message equal to the last
    /// one sent (as SPIRE does for bundles), and ends with `PERMISSION_DENIED` when the caller has no identity and
    /// one is required, or `UNAUTHENTICATED` once the process that connected has exited or changed its credentials
    /// (checked before every message).
    ///
    /// gRPC reports a client that went away through its cancellation handle, not by cancelling this task, so the
    /// handle finishes the subscription, which ends the loop and drops it from the cache at once. Only the newest
    /// update waits while a slow reader holds the writer: every update is a whole snapshot, so older ones are
    /// worthless, and queueing them would let a client that never reads grow the agent's memory. There is no task
    /// between the cache and the writer: a thousand open streams are a thousand handler tasks, no more.
    private static func stream<Response: SwiftProtobuf.Message & Equatable>(
        _ backend: any WorkloadAPIBackend,
        _ authenticator: CallerAuthenticator,
        _ caller: AttestedCaller,
        requireIdentity: Bool,
        handsSVIDs: Bool = false,
        _ makeResponse: @escaping @Sendable (WorkloadUpdate) -> Response
    ) -> StreamingServerResponse<Response> {
        StreamingServerResponse { writer in
            let (updates, subscription) = AsyncStream.makeStream(
                of: WorkloadUpdate.self,
                bufferingPolicy: .bufferingNewest(1)
            )
            backend.subscribe(caller, to: subscription)
            defer { subscription.finish() }
            try await withRPCCancellationHandler {
                var last: Response? = nil
                for await update in updates {
                    guard !requireIdentity || !update.svids.isEmpty else {
                        backend.noIdentityIssued(to: caller)
                        throw noIdentity
                    }
                    let response = makeResponse(update)
                    guard response != last else { continue }
                    try authenticator.reverify(caller)
                    // Recorded before it is written: the audit trail may list a delivery that then failed, never
                    // miss one.
                    if handsSVIDs { backend.handed(update.svids, to: caller) }
                    try await writer.write(response)
                    last = response
                }
            } onCancelRPC: {
                subscription.finish()
            }
            return [:]
        }
    }

    // MARK: - WIT-SVID profile

    static let witUnimplemented = RPCError(
        code: .unimplemented,
        message: "this agent does not issue WIT-SVIDs (fleet mode: the SPIRE Server has no WIT-SVID API)"
    )

    func fetchWITBundles(
        request: ServerRequest<WorkloadAPI_WITBundlesRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<WorkloadAPI_WITBundlesResponse> {
        guard backend.issuesWITSVIDs else { throw Self.witUnimplemented }
        let caller = try await attest(request.metadata)
        return Self.stream(backend, authenticator, caller, requireIdentity: !allowUnauthenticatedVerifiers) {
            update in
            var response = WorkloadAPI_WITBundlesResponse()
            response.bundles = Dictionary(uniqueKeysWithValues: update.witBundles.map { ($0.key.idString, $0.value) })
            return response
        }
    }

    /// Streams the caller's WIT-SVIDs: at once, after every change of its identities or bundles, and when the
    /// first of them reaches half its life (renewed then, as X509-SVIDs are). Each message is re-checked against
    /// the caller's pin before it is written.
    func fetchWITSVID(
        request: ServerRequest<WorkloadAPI_WITSVIDRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<WorkloadAPI_WITSVIDResponse> {
        guard backend.issuesWITSVIDs else { throw Self.witUnimplemented }
        let caller = try await attest(request.metadata)
        var spiffeID: SPIFFEID? = nil
        if !request.message.spiffeID.isEmpty {
            do {
                spiffeID = try SPIFFEID(request.message.spiffeID)
            } catch {
                throw RPCError(code: .invalidArgument, message: "invalid requested spiffe id: \(error)")
            }
        }
        let backend = backend
        let authenticator = authenticator
        let clock = clock
        let requested = spiffeID
        return StreamingServerResponse { writer in
            let (updates, subscription) = AsyncStream.makeStream(
                of: WorkloadUpdate.self,
                bufferingPolicy: .bufferingNewest(1)
            )
            // Wake-ups: every update of the caller's view, and the renewal time of the SVIDs last sent.
            let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            backend.subscribe(caller, to: subscription)
            let forwarder = Task {
                for await _ in updates { wake.yield() }
                wake.finish()
            }
            var timer: Task<Void, Never>? = nil
            defer {
                subscription.finish()
                forwarder.cancel()
                timer?.cancel()
            }
            try await withRPCCancellationHandler {
                var last: WorkloadAPI_WITSVIDResponse? = nil
                for await _ in wakes {
                    let found = try await authenticator.mapErrors {
                        try await backend.witSVIDs(for: caller, spiffeID: requested)
                    }
                    guard !found.svids.isEmpty else {
                        backend.noIdentityIssued(to: caller)
                        throw Self.noIdentity
                    }
                    timer?.cancel()
                    if let renewAt = found.renewAt {
                        let delay = max(0.05, renewAt.timeIntervalSince(clock.now))
                        timer = Task {
                            try? await clock.sleep(for: .milliseconds(Int64(delay * 1000)))
                            if !Task.isCancelled { wake.yield() }
                        }
                    }
                    var response = WorkloadAPI_WITSVIDResponse()
                    response.svids = found.svids.map { svid in
                        var message = WorkloadAPI_WITSVID()
                        message.spiffeID = svid.spiffeID.description
                        message.witSvid = svid.token
                        message.witSvidKey = svid.privateKeyJWK
                        message.hint = svid.hint
                        return message
                    }
                    guard response != last else { continue }
                    try authenticator.reverify(caller)
                    try await writer.write(response)
                    last = response
                }
            } onCancelRPC: {
                subscription.finish()
                wake.finish()
            }
            return [:]
        }
    }

    func fetchJWTSVID(
        request: ServerRequest<WorkloadAPI_JWTSVIDRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<WorkloadAPI_JWTSVIDResponse> {
        let caller = try await attest(request.metadata)
        let message = request.message
        guard !message.audience.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "audience must be specified")
        }
        guard message.audience.count <= Self.maximumAudiences else {
            throw RPCError(
                code: .invalidArgument,
                message: "at most \(Self.maximumAudiences) audiences may be requested"
            )
        }
        guard message.audience.allSatisfy({ !$0.isEmpty && $0.utf8.count <= Self.maximumAudienceLength }) else {
            throw RPCError(
                code: .invalidArgument,
                message: "an audience must be 1 to \(Self.maximumAudienceLength) bytes long"
            )
        }
        var spiffeID: SPIFFEID? = nil
        if !message.spiffeID.isEmpty {
            do {
                spiffeID = try SPIFFEID(message.spiffeID)
            } catch {
                throw RPCError(code: .invalidArgument, message: "invalid requested spiffe id: \(error)")
            }
        }
        let svids = try await mapErrors {
            try await backend.jwtSVIDs(for: caller, audience: message.audience, spiffeID: spiffeID)
        }
        guard !svids.isEmpty else {
            backend.noIdentityIssued(to: caller)
            throw Self.noIdentity
        }
        var response = WorkloadAPI_JWTSVIDResponse()
        response.svids = svids.map { svid in
            var message = WorkloadAPI_JWTSVID()
            message.spiffeID = svid.spiffeID.description
            message.svid = svid.token
            message.hint = svid.hint
            return message
        }
        return ServerResponse(message: response)
    }

    func validateJWTSVID(
        request: ServerRequest<WorkloadAPI_ValidateJWTSVIDRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<WorkloadAPI_ValidateJWTSVIDResponse> {
        let caller = try await attest(request.metadata)
        guard !request.message.audience.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "audience must be specified")
        }
        guard !request.message.svid.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "svid must be specified")
        }
        guard request.message.svid.utf8.count <= Self.maximumTokenLength,
            request.message.audience.utf8.count <= Self.maximumAudienceLength
        else {
            throw RPCError(code: .invalidArgument, message: "svid or audience is too long")
        }
        let validated = try await mapErrors {
            try await backend.validateJWTSVID(request.message.svid, audience: request.message.audience, for: caller)
        }
        var response = WorkloadAPI_ValidateJWTSVIDResponse()
        response.spiffeID = validated.spiffeID.description
        response.claims = Google_Protobuf_Struct(fields: validated.claims.mapValues(Self.protobufValue))
        return ServerResponse(message: response)
    }

    // MARK: - Caller

    /// Checks the security header, then reads the kernel credentials and attests the caller.
    private func attest(_ metadata: Metadata) async throws -> AttestedCaller {
        let header = Array(metadata[stringValues: Self.securityHeader])
        guard header == ["true"] else {
            throw RPCError(code: .invalidArgument, message: "security header missing from request")
        }
        return try await authenticator.authenticate(metadata)
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        try await authenticator.mapErrors(body)
    }

    static let noIdentity = RPCError(code: .permissionDenied, message: "no identity issued")

    static func x509SVIDResponse(_ update: WorkloadUpdate) -> WorkloadAPI_X509SVIDResponse {
        var response = WorkloadAPI_X509SVIDResponse()
        response.svids = update.svids.map { svid in
            var message = WorkloadAPI_X509SVID()
            message.spiffeID = svid.spiffeID.description
            message.x509Svid = svid.chainDER
            message.x509SvidKey = svid.privateKeyDER
            message.bundle = svid.bundleDER
            message.hint = svid.hint
            return message
        }
        response.federatedBundles = Dictionary(
            uniqueKeysWithValues: update.x509Bundles.filter { $0.key != update.localTrustDomain }.map {
                ($0.key.idString, $0.value)
            }
        )
        return response
    }

    static func protobufValue(_ value: JSONValue) -> Google_Protobuf_Value {
        switch value {
        case .null: Google_Protobuf_Value(nilLiteral: ())
        case .bool(let bool): Google_Protobuf_Value(boolValue: bool)
        case .number(let number): Google_Protobuf_Value(numberValue: number)
        case .string(let string): Google_Protobuf_Value(stringValue: string)
        case .array(let values):
            Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: values.map(protobufValue)))
        case .object(let fields):
            Google_Protobuf_Value(structValue: Google_Protobuf_Struct(fields: fields.mapValues(protobufValue)))
        }
    }
}
