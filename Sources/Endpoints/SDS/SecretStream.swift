import Foundation
import LanyardProto
import SwiftProtobuf

/// One `StreamSecrets` stream (SDS state of the world) as a value: Envoy's requests and the caller's updates go in,
/// responses and NACK reports come out, so every rule is unit-tested without a socket.
///
/// Every response carries a version and a nonce. A request answering an older nonce is stale and ignored. A request
/// with a new set of names is answered at once; an ACK (same names, current nonce) is not answered; a NACK (an error
/// detail) is reported and does not stop later updates. An update is pushed when it changes the requested secrets.
struct SecretStream: SDSStreamMachine, Sendable {
    typealias Request = Envoy_Service_Discovery_V3_DiscoveryRequest
    typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse
    typealias Secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret
    typealias Event = SDSEvent<Request>
    typealias Action = SDSAction<Response>

    let config: SDSConfig
    /// Nonces: random in the agent, predictable in tests.
    var makeNonce: @Sendable () -> String = { UUID().uuidString }
    private(set) var names: [String]? = nil
    private(set) var node: Envoy_Config_Core_V3_Node? = nil
    private(set) var typeURL = SDSResources.secretTypeURL
    private(set) var version: UInt64 = 0
    private(set) var nonce = ""
    private var latest: WorkloadUpdate? = nil
    private var lastSent: [Secret]? = nil
    private var forceSend = false

    init(config: SDSConfig) {
        self.config = config
    }

    mutating func handle(_ event: Event) throws(SDSStreamError) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .request(let message):
            if node == nil && message.hasNode { node = message.node }
            if !message.responseNonce.isEmpty && message.responseNonce != nonce { return [] }
            if message.hasErrorDetail {
                actions.append(.nack(version: message.versionInfo, detail: message.errorDetail.message))
            }
            let namesChanged = names != message.resourceNames
            names = message.resourceNames
            typeURL = message.typeURL.isEmpty ? SDSResources.secretTypeURL : message.typeURL
            guard namesChanged || nonce.isEmpty else { return actions }
            forceSend = true
        case .update(let update):
            latest = update
        }
        guard let names, let update = latest else { return actions }
        let secrets: [Secret]
        do {
            secrets = try SDSResources(config: config, node: node).secrets(for: update, names: names)
        } catch {
            throw .unauthorized(error.names)
        }
        guard forceSend || secrets != lastSent else { return actions }
        version += 1
        nonce = makeNonce()
        lastSent = secrets
        forceSend = false
        var response = Response()
        response.versionInfo = String(version)
        response.typeURL = typeURL
        response.nonce = nonce
        do {
            response.resources = try secrets.map { try Google_Protobuf_Any(message: $0) }
        } catch {
            throw .encoding("\(error)")
        }
        actions.append(.send(response))
        return actions
    }
}
