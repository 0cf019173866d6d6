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
        response.versionInfo = Self.version(of: secrets)
        response.typeURL = Self.typeURL(request.message.typeURL)
        response.nonce = UUID().uuidString
        response.resources = try secrets.map { try Google_Protobuf_Any(message: $0) }
        return ServerResponse(message: response)
    }

    // MARK: - StreamSecrets (state of the world)

    func streamSecrets(
        request: StreamingServerRequest<DiscoveryRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<DiscoveryResponse> {
        let caller = try await authenticator.authenticate(request.metadata)
        let updates = backend.updates(for: caller)
        let logger = logger
        let config = config
        let authenticator = authenticator
        let nackThrottle = nackThrottle
        return StreamingServerResponse { writer in
            var state = StreamState()
            try await Self.merge(request.messages, updates) { event in
                switch event {
                case .request(let message):
                    guard
                        Self.accept(
                            message,
                            node: &state.node,
                            nonce: state.nonce,
                            caller: caller,
                            logger: logger,
                            throttle: nackThrottle
                        )
                    else { return }
                    let namesChanged = state.names != message.resourceNames
                    state.names = message.resourceNames
                    state.typeURL = Self.typeURL(message.typeURL)
                    guard namesChanged || state.nonce.isEmpty else { return }  // an ACK
                    state.forceSend = true
                case .update(let update):
                    state.latest = update
                case .ended:
                    return
                }
                guard state.names != nil, let update = state.latest else { return }
                let resources = SDSResources(config: config, node: state.node)
                let secrets = try Self.resolve(resources, update, names: state.names ?? [])
                guard state.forceSend || secrets != state.lastSent else { return }
                state.version += 1
                state.nonce = UUID().uuidString
                state.lastSent = secrets
                state.forceSend = false
                var response = DiscoveryResponse()
                response.versionInfo = String(state.version)
                response.typeURL = state.typeURL
                response.nonce = state.nonce
                response.resources = try secrets.map { try Google_Protobuf_Any(message: $0) }
                try authenticator.reverify(caller)
                try await writer.write(response)
            }
            return [:]
        }
    }

    struct StreamState {
        var names: [String]? = nil
        var node: Envoy_Config_Core_V3_Node? = nil
        var typeURL = SDSResources.secretTypeURL
        var latest: WorkloadUpdate? = nil
        var lastSent: [Secret]? = nil
        var version: UInt64 = 0
        var nonce = ""
        var forceSend = false
    }

    // MARK: - DeltaSecrets (incremental)

    func deltaSecrets(
        request: StreamingServerRequest<DeltaRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<DeltaResponse> {
        let caller = try await authenticator.authenticate(request.metadata)
        let updates = backend.updates(for: caller)
        let logger = logger
        let config = config
        let authenticator = authenticator
        let nackThrottle = nackThrottle
        return StreamingServerResponse { writer in
            var state = DeltaState()
            try await Self.merge(request.messages, updates) { event in
                switch event {
                case .request(let message):
                    guard
                        Self.accept(
                            message,
                            node: &state.node,
                            nonce: state.nonce,
                            caller: caller,
                            logger: logger,
                            throttle: nackThrottle
                        )
                    else { return }
                    if !state.started {
                        state.started = true
                        state.wildcard =
                            message.resourceNamesSubscribe.isEmpty || message.resourceNamesSubscribe.contains("*")
                        state.sentVersions = message.initialResourceVersions
                    }
                    if let update = state.latest {
                        let resources = SDSResources(config: config, node: state.node)
                        let unknown = message.resourceNamesSubscribe.filter {
                            $0 != "*" && resources.secret(named: $0, update) == nil
                        }
                        guard unknown.isEmpty else { throw Self.unauthorized(unknown) }
                    } else {
                        state.pendingCheck.append(contentsOf: message.resourceNamesSubscribe.filter { $0 != "*" })
                    }
                    state.subscribed.formUnion(message.resourceNamesSubscribe.filter { $0 != "*" })
                    for name in message.resourceNamesUnsubscribe {
                        state.subscribed.remove(name)
                        state.sentVersions[name] = nil
                    }
                case .update(let update):
                    state.latest = update
                case .ended:
                    return
                }
                guard state.started, let update = state.latest else { return }
                let resources = SDSResources(config: config, node: state.node)
                if !state.pendingCheck.isEmpty {
                    let unknown = state.pendingCheck.filter { resources.secret(named: $0, update) == nil }
                    guard unknown.isEmpty else { throw Self.unauthorized(unknown) }
                    state.pendingCheck = []
                }
                let current: [Secret]
                if state.wildcard {
                    current = (try? resources.secrets(for: update, names: [])) ?? []
                } else {
                    current = state.subscribed.sorted().compactMap { resources.secret(named: $0, update) }
                }
                var changed: [Envoy_Service_Discovery_V3_Resource] = []
                for secret in current {
                    let version = Self.version(of: [secret])
                    guard state.sentVersions[secret.name] != version else { continue }
                    var resource = Envoy_Service_Discovery_V3_Resource()
                    resource.name = secret.name
                    resource.version = version
                    resource.resource = try Google_Protobuf_Any(message: secret)
                    changed.append(resource)
                    state.sentVersions[secret.name] = version
                }
                let present = Set(current.map(\.name))
                let removed = state.sentVersions.keys.filter { !present.contains($0) }.sorted()
                for name in removed { state.sentVersions[name] = nil }
                guard !changed.isEmpty || !removed.isEmpty else { return }
                state.version += 1
                state.nonce = UUID().uuidString
                var response = DeltaResponse()
                response.systemVersionInfo = String(state.version)
                response.typeURL = SDSResources.secretTypeURL
                response.nonce = state.nonce
                response.resources = changed
                response.removedResources = removed
                try authenticator.reverify(caller)
                try await writer.write(response)
            }
            return [:]
        }
    }

    struct DeltaState {
        var started = false
        var wildcard = false
        var subscribed: Set<String> = []
        var pendingCheck: [String] = []
        var sentVersions: [String: String] = [:]
        var node: Envoy_Config_Core_V3_Node? = nil
        var latest: WorkloadUpdate? = nil
        var version: UInt64 = 0
        var nonce = ""
    }

    // MARK: - Helpers

    /// What every SDS request, state-of-the-world or delta, goes through first: the node is remembered from the
    /// first request that names it, a reply to a superseded response is dropped (returns false), and a NACK is
    /// logged with Envoy's error detail (cut to 512 bytes, at most once a second per uid; the log handlers escape
    /// control characters, so the detail cannot forge log lines).
    static func accept(
        _ message: some SDSRequest,
        node: inout Envoy_Config_Core_V3_Node?,
        nonce: String,
        caller: AttestedCaller,
        logger: Logger,
        throttle: LogThrottle
    ) -> Bool {
        if node == nil && message.hasNode { node = message.node }
        if !message.responseNonce.isEmpty && message.responseNonce != nonce { return false }
        if message.hasErrorDetail {
            let (log, suppressed) = throttle.admit(String(caller.credentials.uid))
            if log {
                logger.warning(
                    "envoy rejected secrets (NACK)",
                    metadata: [
                        "sds.version": "\(message.acknowledgedVersion.prefix(64))",
                        "sds.error": "\(String(decoding: message.errorDetail.message.utf8.prefix(512), as: UTF8.self))",
                        "caller.pid": "\(caller.credentials.pid)", "nacks.suppressed": "\(suppressed)",
                    ]
                )
            }
        }
        return true
    }

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

    /// A content version: FNV-1a of the serialized secrets, stable across restarts so Envoy's
    /// `initial_resource_versions` match.
    static func version(of secrets: [Secret]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for secret in secrets {
            for byte in (try? secret.serializedBytes() as [UInt8]) ?? [] {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return String(hash, radix: 16)
    }
}

/// The fields both kinds of SDS request share.
protocol SDSRequest: Sendable {
    var hasNode: Bool { get }
    var node: Envoy_Config_Core_V3_Node { get }
    var responseNonce: String { get }
    var hasErrorDetail: Bool { get }
    var errorDetail: Google_Rpc_Status { get }
    /// The version Envoy last accepted; delta requests carry none.
    var acknowledgedVersion: String { get }
}

extension Envoy_Service_Discovery_V3_DiscoveryRequest: SDSRequest {
    var acknowledgedVersion: String { versionInfo }
}

extension Envoy_Service_Discovery_V3_DeltaDiscoveryRequest: SDSRequest {
    var acknowledgedVersion: String { "" }
}
