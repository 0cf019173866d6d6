import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LanyardProto
import Logging
import SPIFFE
import SwiftProtobuf
import X509

/// The SPIFFE Broker API (`spiffe.broker.API`, incubating): authorized brokers fetch SVIDs and bundles on behalf of
/// workloads they name by reference.
///
/// Every call needs the `broker.spiffe.io: true` header (`INVALID_ARGUMENT` otherwise) and a client certificate that
/// the endpoint's TLS layer verified against the trust bundle; its SPIFFE ID must be among `authorizedBrokers`
/// (`PERMISSION_DENIED` otherwise). A reference that is missing, malformed or of an unknown type is
/// `INVALID_ARGUMENT`, one naming nothing on this node `NOT_FOUND`, one whose workload has no identity
/// `PERMISSION_DENIED`, each with a `google.rpc.ErrorInfo` (domain `spiffe.io`). Streams end (`NOT_FOUND`) once the
/// workload stops, checked every `presenceInterval`.
struct BrokerAPIHandler: Spiffe_Broker_API.ServiceProtocol {
    static let securityHeader = "broker.spiffe.io"

    let backend: any BrokerBackend
    let authorizedBrokers: Set<SPIFFEID>
    let logger: Logger
    var presenceInterval: Duration = .seconds(1)
    /// False on a TCP endpoint: PID references name processes of this node only, so they are refused there.
    var servesLocalReferences = true

    func subscribeToX509SVID(
        request: ServerRequest<Spiffe_Broker_SubscribeToX509SVIDRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Spiffe_Broker_SubscribeToX509SVIDResponse> {
        let (target, caller) = try await authorize(request, context) { $0.reference }
        return stream(target, caller, requireIdentity: true) { update in
            var response = Spiffe_Broker_SubscribeToX509SVIDResponse()
            response.svids = update.svids.map { svid in
                var message = Spiffe_Broker_X509SVID()
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
    }

    func subscribeToX509Bundles(
        request: ServerRequest<Spiffe_Broker_SubscribeToX509BundlesRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Spiffe_Broker_SubscribeToX509BundlesResponse> {
        let (target, caller) = try await authorize(request, context) { $0.reference }
        return stream(target, caller, requireIdentity: true) { update in
            var response = Spiffe_Broker_SubscribeToX509BundlesResponse()
            response.bundles = Dictionary(uniqueKeysWithValues: update.x509Bundles.map { ($0.key.idString, $0.value) })
            return response
        }
    }

    func subscribeToJWTBundles(
        request: ServerRequest<Spiffe_Broker_SubscribeToJWTBundlesRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Spiffe_Broker_SubscribeToJWTBundlesResponse> {
        let (target, caller) = try await authorize(request, context) { $0.reference }
        return stream(target, caller, requireIdentity: true) { update in
            var response = Spiffe_Broker_SubscribeToJWTBundlesResponse()
            response.bundles = Dictionary(uniqueKeysWithValues: update.jwtBundles.map { ($0.key.idString, $0.value) })
            return response
        }
    }

    func fetchJWTSVID(
        request: ServerRequest<Spiffe_Broker_FetchJWTSVIDRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Spiffe_Broker_FetchJWTSVIDResponse> {
        let message = request.message
        let (_, caller) = try await authorize(request.metadata, message.reference, context)
        guard !message.audience.isEmpty,
            message.audience.count <= WorkloadAPIHandler.maximumAudiences,
            message.audience.allSatisfy({ !$0.isEmpty && $0.utf8.count <= WorkloadAPIHandler.maximumAudienceLength })
        else {
            throw RPCError(
                code: .invalidArgument,
                message: "audience must be 1 to 32 non-empty values of at most 1 KiB"
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
        let svids = try await backend.workloads.jwtSVIDs(for: caller, audience: message.audience, spiffeID: spiffeID)
        guard !svids.isEmpty else { throw Self.status(BrokerReferenceError(.notEntitled, "no identity issued")) }
        var response = Spiffe_Broker_FetchJWTSVIDResponse()
        response.svids = svids.map { svid in
            var message = Spiffe_Broker_JWTSVID()
            message.spiffeID = svid.spiffeID.description
            message.svid = svid.token
            message.hint = svid.hint
            return message
        }
        return ServerResponse(message: response)
    }

    // MARK: - Authorization and references

    /// Header, broker identity, then the reference, resolved and attested.
    private func authorize<Request>(
        _ request: ServerRequest<Request>,
        _ context: ServerContext,
        reference: (Request) -> Spiffe_Broker_WorkloadReference
    ) async throws -> (WorkloadReferenceTarget, AttestedCaller) {
        try await authorize(request.metadata, reference(request.message), context)
    }

    private func authorize(
        _ metadata: Metadata,
        _ reference: Spiffe_Broker_WorkloadReference,
        _ context: ServerContext
    ) async throws -> (WorkloadReferenceTarget, AttestedCaller) {
        guard Array(metadata[stringValues: Self.securityHeader]) == ["true"] else {
            throw RPCError(code: .invalidArgument, message: "security header missing from request")
        }
        let broker = Self.brokerID(context)
        guard let broker, authorizedBrokers.contains(broker) else {
            logger.warning(
                "broker api call refused: not an authorized broker",
                metadata: [LogKey.spiffeID: "\(broker.map(\.description) ?? "none")"]
            )
            throw RPCError(code: .permissionDenied, message: "the caller is not an authorized broker")
        }
        do {
            let target = try Self.target(of: reference)
            if case .pid = target, !servesLocalReferences {
                throw BrokerReferenceError(
                    .invalid,
                    "PID references are served only on the broker endpoint's Unix socket, never over TCP"
                )
            }
            let caller = try await backend.resolve(target)
            return (target, caller)
        } catch let error as BrokerReferenceError {
            throw Self.status(error)
        }
    }

    /// The SPIFFE ID in the URI SAN of the certificate the TLS layer verified.
    static func brokerID(_ context: ServerContext) -> SPIFFEID? {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate,
            let names = try? certificate.extensions.subjectAlternativeNames
        else { return nil }
        let uris = names.compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1 else { return nil }
        return try? SPIFFEID(uris[0])
    }

    /// The reference's target: a PID reference, or a Kubernetes object reference to a core pod.
    static func target(
        of reference: Spiffe_Broker_WorkloadReference
    ) throws(BrokerReferenceError) -> WorkloadReferenceTarget {
        guard reference.hasReference else {
            throw BrokerReferenceError(.invalid, "the request has no workload reference")
        }
        let any = reference.reference
        if any.isA(Spiffe_Broker_WorkloadPIDReference.self) {
            guard let pid = try? Spiffe_Broker_WorkloadPIDReference(unpackingAny: any) else {
                throw BrokerReferenceError(.invalid, "the PID reference cannot be decoded")
            }
            guard pid.pid > 0 else { throw BrokerReferenceError(.invalid, "a PID must be positive, not \(pid.pid)") }
            return .pid(pid.pid)
        }
        if any.isA(Spiffe_Broker_KubernetesObjectReference.self) {
            guard let object = try? Spiffe_Broker_KubernetesObjectReference(unpackingAny: any) else {
                throw BrokerReferenceError(.invalid, "the Kubernetes object reference cannot be decoded")
            }
            guard object.type.plural == "pods", object.type.group == "core" else {
                throw BrokerReferenceError(
                    .invalid,
                    "only pods (plural pods, group core) are served, not \(object.type.plural.prefix(64)).\(object.type.group.prefix(64))"
                )
            }
            let uid = object.uid.isEmpty ? nil : object.uid
            let key = object.hasKey ? object.key : nil
            guard uid != nil || key != nil else {
                throw BrokerReferenceError(.invalid, "a pod reference needs key or uid")
            }
            if let key, key.name.isEmpty || key.namespace.isEmpty {
                throw BrokerReferenceError(.invalid, "a pod's key needs its namespace and name")
            }
            return .pod(uid: uid, namespace: key?.namespace, name: key?.name)
        }
        throw BrokerReferenceError(.invalid, "unknown workload reference type \(any.typeURL.prefix(200))")
    }

    static func status(_ error: BrokerReferenceError) -> GoogleRPCStatus {
        let code: RPCError.Code =
            switch error.reason {
            case .invalid: .invalidArgument
            case .notFound: .notFound
            case .notEntitled: .permissionDenied
            }
        return GoogleRPCStatus(
            code: code,
            message: error.message,
            details: .errorInfo(reason: error.reason.rawValue, domain: "spiffe.io", metadata: [:])
        )
    }

    // MARK: - Streams

    /// Sends `makeResponse(update)` for every distinct update of the workload's view, until the broker goes away or
    /// the workload stops (then `NOT_FOUND`). No identity: `PERMISSION_DENIED`.
    private func stream<Response: SwiftProtobuf.Message & Equatable>(
        _ target: WorkloadReferenceTarget,
        _ caller: AttestedCaller,
        requireIdentity: Bool,
        _ makeResponse: @escaping @Sendable (WorkloadUpdate) -> Response
    ) -> StreamingServerResponse<Response> {
        let backend = backend
        let interval = presenceInterval
        return StreamingServerResponse { writer in
            let (updates, subscription) = AsyncStream.makeStream(
                of: WorkloadUpdate.self,
                bufferingPolicy: .bufferingNewest(1)
            )
            backend.workloads.subscribe(caller, to: subscription)
            let stopped = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { return false }
                    if await !backend.isPresent(target, caller: caller) {
                        subscription.finish()
                        return true
                    }
                }
                return false
            }
            defer {
                subscription.finish()
                stopped.cancel()
            }
            try await withRPCCancellationHandler {
                var last: Response? = nil
                for await update in updates {
                    guard !requireIdentity || !update.svids.isEmpty else {
                        throw Self.status(BrokerReferenceError(.notEntitled, "no identity issued to \(target)"))
                    }
                    let response = makeResponse(update)
                    guard response != last else { continue }
                    try await writer.write(response)
                    last = response
                }
            } onCancelRPC: {
                subscription.finish()
            }
            stopped.cancel()
            let gone = await stopped.value
            let present = await backend.isPresent(target, caller: caller)
            if gone || !present {
                throw Self.status(BrokerReferenceError(.notFound, "\(target) stopped"))
            }
            return [:]
        }
    }
}
