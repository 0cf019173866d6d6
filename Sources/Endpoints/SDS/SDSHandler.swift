import Foundation
import GRPCCore
import LanyardProto
import Logging
import SPIFFE
import SwiftProtobuf

/// Envoy's Secret Discovery Service (v3) on the Workload API socket: what Istio sidecars use.
///
/// Callers are attested like Workload API callers (the security header is not required, as in SPIRE).
/// `StreamSecrets` follows the state-of-the-world protocol: every response carries a version and a nonce, stale
/// nonces are ignored, a NACK is logged with Envoy's error detail and does not stop later updates, and a push
/// goes out on every cache change that changes the secrets. `DeltaSecrets`, which SPIRE Agent lacks, sends only
/// the resources that changed and names the removed ones.
struct SDSHandler: Envoy_Service_Secret_V3_SecretDiscoveryService.ServiceProtocol {
    let backend: any WorkloadAPIBackend
    let config: SDSConfig
    let logger: Logger
    let authenticator: CallerAuthenticator

    /// NACKs are logged at most once a second per caller uid: an Envoy that rejects every push must not flood the log.
    let nackThrottle = LogThrottle()

    init(backend: any WorkloadAPIBackend, callers: ConnectedCallers, config: SDSConfig, logger: Logger) {
        self.backend = backend
        self.config = config
        self.logger = logger
        self.authenticator = CallerAuthenticator(backend: backend, callers: callers, logger: logger)
    }

    typealias DiscoveryRequest = Envoy_Service_Discovery_V3_DiscoveryRequest
    typealias DiscoveryResponse = Envoy_Service_Discovery_V3_DiscoveryResponse
    typealias DeltaRequest = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
    typealias DeltaResponse = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
    typealias Secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret

    /// What a stream reacts to: a message from Envoy, or a change in what the caller may see.
    enum Event<Request: Sendable>: Sendable {
        case request(Request)
        case update(WorkloadUpdate)
        case ended
    }

    // MARK: - FetchSecrets

    func fetchSecrets(
        request: ServerRequest<DiscoveryRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<DiscoveryResponse> {
        let caller = try await authenticator.authenticate(request.metadata)
        var updates = backend.updates(for: caller).makeAsyncIterator()
        guard let update = await updates.next() else {
            throw RPCError(code: .unavailable, message: "the agent is shutting down")
        }
        let resources = SDSResources(config: config, node: request.message.hasNode ? request.message.node : nil)
        let secrets = try Self.resolve(resources, update, names: request.message.resourceNames)
        var response = DiscoveryResponse()
        response.versionInfo = SDSResources.version(of: secrets)
        response.typeURL = Self.typeURL(request.message.typeURL)
        response.nonce = UUID().uuidString
        response.resources = try secrets.map { try Google_Protobuf_Any(message: $0) }
        return ServerResponse(message: response)
    }

    // MARK: - StreamSecrets (state of the world) and DeltaSecrets (incremental)

    func streamSecrets(
        request: StreamingServerRequest<DiscoveryRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<DiscoveryResponse> {
        try await stream(SecretStream(config: config), request)
    }

    func deltaSecrets(
        request: StreamingServerRequest<DeltaRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<DeltaResponse> {
        try await stream(DeltaSecretStream(config: config), request)
    }

    /// Attests the caller, then runs `machine` over Envoy's requests and the caller's updates: NACKs are logged, and
    /// each response is sent once the caller's pin still holds.
    private func stream<Machine: SDSStreamMachine & Sendable>(
        _ machine: Machine,
        _ request: StreamingServerRequest<Machine.Request>
    ) async throws -> StreamingServerResponse<Machine.Response>
    where Machine.Request: Sendable, Machine.Response: Sendable & SwiftProtobuf.Message {
        let caller = try await authenticator.authenticate(request.metadata)
        let updates = backend.updates(for: caller)
        return StreamingServerResponse { writer in
            var machine = machine
            var latest: WorkloadUpdate? = nil
            try await Self.merge(request.messages, updates) { event in
                let actions: [SDSAction<Machine.Response>]
                switch event {
                case .request(let message):
                    actions = try perform { () throws(SDSStreamError) in try machine.handle(.request(message)) }
                case .update(let update):
                    latest = update
                    actions = try perform { () throws(SDSStreamError) in try machine.handle(.update(update)) }
                case .ended:
                    return
                }
                for action in actions {
                    switch action {
                    case .nack(let version, let detail):
                        logNACK(version: version, detail: detail, caller: caller)
                    case .send(let response):
                        try authenticator.reverify(caller)
                        // Recorded before it is written: the audit trail may list a delivery that then failed,
                        // never miss one.
                        if let latest { Self.reportHanded(response, of: latest, to: caller, backend) }
                        try await writer.write(response)
                    }
                }
            }
            return [:]
        }
    }

    /// Tells the backend which of the caller's certificates a response carries (for the audit trail): those whose
    /// chain is in it. Responses are rare (a change or a request), so searching their bytes costs nothing to speak of.
    private static func reportHanded(
        _ response: some SwiftProtobuf.Message,
        of update: WorkloadUpdate,
        to caller: AttestedCaller,
        _ backend: any WorkloadAPIBackend
    ) {
        guard !update.svids.isEmpty, let bytes: Data = try? response.serializedBytes() else { return }
        let carried = update.svids.filter { bytes.range(of: Data($0.chainPEM.utf8)) != nil }
        if !carried.isEmpty { backend.handed(carried, to: caller) }
    }

    /// Runs a state-machine step, turning its errors into gRPC status codes.
    private func perform<Action>(_ step: () throws(SDSStreamError) -> [Action]) throws -> [Action] {
        do {
            return try step()
        } catch .unauthorized(let names) {
            throw Self.unauthorized(names)
        } catch .encoding(let reason) {
            logger.error("an sds response could not be encoded", metadata: [LogKey.error: "\(reason)"])
            throw RPCError(code: .internalError, message: "internal error")
        }
    }

    /// Logs Envoy's NACK with its error detail (cut to 512 bytes, at most once a second per uid; the log handlers
    /// escape control characters, so the detail cannot forge log lines).
    private func logNACK(version: String, detail: String, caller: AttestedCaller) {
        let (log, suppressed) = nackThrottle.admit(String(caller.credentials.uid))
        guard log else { return }
        logger.warning(
            "envoy rejected secrets (NACK)",
            metadata: [
                LogKey.sdsVersion: "\(version.prefix(64))",
                LogKey.sdsError: "\(String(decoding: detail.utf8.prefix(512), as: UTF8.self))",
                LogKey.callerPID: "\(caller.credentials.pid)", LogKey.nacksSuppressed: "\(suppressed)",
            ]
        )
    }

    // MARK: - Helpers

    /// Feeds requests and updates, in arrival order, to one handler that owns the stream's state. The stream
    /// ends when Envoy closes its side or the agent ends the updates (shutdown).
    ///
    /// Each source waits until the handler has taken its last event before reading the next, so a client that
    /// floods requests, or never reads while updates arrive, queues at most one of each here: HTTP/2 flow control
    /// holds back the rest of its requests, and the cache keeps only the newest update for a subscriber.
    static func merge<Request: Sendable>(
        _ requests: RPCAsyncSequence<Request, any Error>,
        _ updates: AsyncStream<WorkloadUpdate>,
        handle: (Event<Request>) async throws -> Void
    ) async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Event<Request>.self)
        let (requestTaken, requestTakenContinuation) = AsyncStream.makeStream(of: Void.self)
        let (updateTaken, updateTakenContinuation) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.yield(.ended) }
                var taken = requestTaken.makeAsyncIterator()
                for try await request in requests {
                    continuation.yield(.request(request))
                    guard await taken.next() != nil else { return }
                }
            }
            group.addTask {
                defer { continuation.yield(.ended) }
                var taken = updateTaken.makeAsyncIterator()
                for await update in updates {
                    continuation.yield(.update(update))
                    guard await taken.next() != nil else { return }
                }
            }
            defer {
                requestTakenContinuation.finish()
                updateTakenContinuation.finish()
                group.cancelAll()
            }
            // A client that went away is reported through gRPC's cancellation handle, not task cancellation.
            try await withRPCCancellationHandler {
                for await event in events {
                    switch event {
                    case .ended: return
                    case .request: requestTakenContinuation.yield()
                    case .update: updateTakenContinuation.yield()
                    }
                    try await handle(event)
                }
            } onCancelRPC: {
                continuation.yield(.ended)
            }
        }
    }

    static func resolve(_ resources: SDSResources, _ update: WorkloadUpdate, names: [String]) throws -> [Secret] {
        do {
            return try resources.secrets(for: update, names: names)
        } catch {
            throw unauthorized(error.names)
        }
    }

    static func unauthorized(_ names: [String]) -> RPCError {
        RPCError(code: .invalidArgument, message: "workload is not authorized for the requested identities \(names)")
    }

    static func typeURL(_ requested: String) -> String { requested.isEmpty ? SDSResources.secretTypeURL : requested }
}
