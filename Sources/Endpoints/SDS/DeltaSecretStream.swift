import Foundation
import LanyardProto
import SwiftProtobuf

/// One `DeltaSecrets` stream (incremental SDS) as a value, as ``SecretStream`` is for the state of the world.
///
/// The first request says whether the stream is a wildcard (no names, or `*`) and which resource versions Envoy
/// already holds (`initial_resource_versions`, after a reconnect). Later requests subscribe and unsubscribe names;
/// a name the caller may not see ends the stream. Responses carry only resources whose version changed, and name
/// the ones Envoy holds that no longer exist.
struct DeltaSecretStream: SDSStreamMachine, Sendable {
    typealias Request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
    typealias Response = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
    typealias Secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret
    typealias Event = SDSEvent<Request>
    typealias Action = SDSAction<Response>

    let config: SDSConfig
    var makeNonce: @Sendable () -> String = { UUID().uuidString }
    private(set) var started = false
    private(set) var wildcard = false
    private(set) var subscribed: Set<String> = []
    /// Names subscribed before the first update arrived, checked against it.
    private var pendingCheck: [String] = []
    /// The version of each resource Envoy holds.
    private(set) var sentVersions: [String: String] = [:]
    private(set) var node: Envoy_Config_Core_V3_Node? = nil
    private var latest: WorkloadUpdate? = nil
    private(set) var version: UInt64 = 0
    private(set) var nonce = ""

    init(config: SDSConfig) {
        self.config = config
    }

    mutating func handle(_ event: Event) throws(SDSStreamError) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .request(let message):
            if node == nil && message.hasNode { node = message.node }
            if !message.responseNonce.isEmpty && message.responseNonce != nonce { return [] }
            if message.hasErrorDetail { actions.append(.nack(version: "", detail: message.errorDetail.message)) }
            let subscribe = message.resourceNamesSubscribe.filter { $0 != "*" }
            if !started {
                started = true
                wildcard = message.resourceNamesSubscribe.isEmpty || message.resourceNamesSubscribe.contains("*")
                sentVersions = message.initialResourceVersions
            }
            if let update = latest {
                let resources = SDSResources(config: config, node: node)
                let unknown = subscribe.filter { resources.secret(named: $0, update) == nil }
                guard unknown.isEmpty else { throw .unauthorized(unknown) }
            } else {
                pendingCheck.append(contentsOf: subscribe)
            }
            // Only names the caller may see stay subscribed (others end the stream), so the set is bounded by
            // what the caller holds; names pending the first update come from one request.
            subscribed.formUnion(subscribe)
            for name in message.resourceNamesUnsubscribe {
                subscribed.remove(name)
                sentVersions[name] = nil
            }
        case .update(let update):
            latest = update
        }
        guard started, let update = latest else { return actions }
        let resources = SDSResources(config: config, node: node)
        if !pendingCheck.isEmpty {
            let unknown = pendingCheck.filter { resources.secret(named: $0, update) == nil }
            guard unknown.isEmpty else { throw .unauthorized(unknown) }
            pendingCheck = []
        }
        let current: [Secret]
        if wildcard {
            current = (try? resources.secrets(for: update, names: [])) ?? []
        } else {
            current = subscribed.sorted().compactMap { resources.secret(named: $0, update) }
        }
        var changed: [Envoy_Service_Discovery_V3_Resource] = []
        for secret in current {
            let secretVersion = SDSResources.version(of: [secret])
            guard sentVersions[secret.name] != secretVersion else { continue }
            var resource = Envoy_Service_Discovery_V3_Resource()
            resource.name = secret.name
            resource.version = secretVersion
            do {
                resource.resource = try Google_Protobuf_Any(message: secret)
            } catch {
                throw .encoding("\(error)")
            }
            changed.append(resource)
            sentVersions[secret.name] = secretVersion
        }
        let present = Set(current.map(\.name))
        let removed = sentVersions.keys.filter { !present.contains($0) }.sorted()
        for name in removed { sentVersions[name] = nil }
        guard !changed.isEmpty || !removed.isEmpty else { return actions }
        version += 1
        nonce = makeNonce()
        var response = Response()
        response.systemVersionInfo = String(version)
        response.typeURL = SDSResources.secretTypeURL
        response.nonce = nonce
        response.resources = changed
        response.removedResources = removed
        actions.append(.send(response))
        return actions
    }
}
