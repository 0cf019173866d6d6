import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LanyardProto
import LanyardTestSupport
import SPIFFE
import SPIFFECrypto
import SwiftProtobuf
import Testing

@testable import LanyardAgent

typealias DiscoveryRequest = Envoy_Service_Discovery_V3_DiscoveryRequest
typealias DiscoveryResponse = Envoy_Service_Discovery_V3_DiscoveryResponse
typealias DeltaRequest = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
typealias DeltaResponse = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
typealias Secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret

/// One bidirectional SDS stream driven step by step, as Envoy drives it.
struct SDSSession<Request: Sendable, Response: Sendable> {
    let requests: AsyncStream<Request>.Continuation
    var responses: RPCAsyncSequence<Response, any Error>.AsyncIterator

    func send(_ request: Request) { requests.yield(request) }

    mutating func next() async throws -> Response {
        guard let response = try await responses.next() else { throw TestAgentError("the stream ended") }
        return response
    }
}

extension TestAgent {
    typealias SDSClient = Envoy_Service_Secret_V3_SecretDiscoveryService.Client<HTTP2ClientTransport.Posix>

    func streamSecrets<T: Sendable>(
        _ body: @escaping @Sendable (inout SDSSession<DiscoveryRequest, DiscoveryResponse>) async throws -> T
    ) async throws -> T {
        try await client.withGRPC { grpc in
            let sds = SDSClient(wrapping: grpc)
            let (requests, continuation) = AsyncStream.makeStream(of: DiscoveryRequest.self)
            return try await sds.streamSecrets(
                requestProducer: { writer in for await request in requests { try await writer.write(request) } },
                onResponse: { response in
                    var session = SDSSession<DiscoveryRequest, DiscoveryResponse>(
                        requests: continuation,
                        responses: response.messages.makeAsyncIterator()
                    )
                    defer { continuation.finish() }
                    return try await body(&session)
                }
            )
        }
    }

    func deltaSecrets<T: Sendable>(
        _ body: @escaping @Sendable (inout SDSSession<DeltaRequest, DeltaResponse>) async throws -> T
    ) async throws -> T {
        try await client.withGRPC { grpc in
            let sds = SDSClient(wrapping: grpc)
            let (requests, continuation) = AsyncStream.makeStream(of: DeltaRequest.self)
            return try await sds.deltaSecrets(
                requestProducer: { writer in for await request in requests { try await writer.write(request) } },
                onResponse: { response in
                    var session = SDSSession<DeltaRequest, DeltaResponse>(
                        requests: continuation,
                        responses: response.messages.makeAsyncIterator()
                    )
                    defer { continuation.finish() }
                    return try await body(&session)
                }
            )
        }
    }
}

func request(
    _ names: [String],
    version: String = "",
    nonce: String = "",
    nack: String? = nil,
    disableSPIFFE: Bool = false
) -> DiscoveryRequest {
    var request = DiscoveryRequest()
    request.resourceNames = names
    request.typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    request.versionInfo = version
    request.responseNonce = nonce
    request.node.id = "sidecar~10.0.0.1~web.shop~shop.svc.cluster.local"
    if disableSPIFFE {
        request.node.metadata.fields["disable_spiffe_cert_validation"] = Google_Protobuf_Value(boolValue: true)
    }
    if let nack {
        request.errorDetail.code = 3
        request.errorDetail.message = nack
    }
    return request
}

func secrets(_ response: DiscoveryResponse) throws -> [Secret] {
    try response.resources.map { try Secret(unpackingAny: $0) }
}

/// The trust domains and PEM bundles of a validation context, whichever shape it has.
func trustDomains(_ secret: Secret) throws -> [String: [Certificate]] {
    let context = secret.validationContext
    if context.hasCustomValidatorConfig {
        #expect(context.customValidatorConfig.name == "envoy.tls.cert_validator.spiffe")
        #expect(
            context.customValidatorConfig.typedConfig.typeURL
                == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
        )
        let config = try Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig(
            unpackingAny: context.customValidatorConfig.typedConfig
        )
        var result: [String: [Certificate]] = [:]
        for domain in config.trustDomains {
            result[domain.name] = try Certificate.chain(
                pemEncoded: String(decoding: domain.trustBundle.inlineBytes, as: UTF8.self)
            )
        }
        return result
    }
    return [
        "(plain)": try Certificate.chain(pemEncoded: String(decoding: context.trustedCa.inlineBytes, as: UTF8.self))
    ]
}

@Suite("Envoy SDS v3 on the Workload API socket", .serialized, .timeLimit(.minutes(5)))
struct SDSIntegrationTests {
    static let rootEntry = WorkloadAPIIntegrationTests.rootEntry

    func isRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the SDS integration tests need root (an entry for uid 0)")
        return false
    }

    @Test("Istio's names: default and ROOTCA stream, ACK, rotation pushes, and a NACK does not stop updates")
    func istioStream() async throws {
        guard isRoot() else { return }
        // Renewals come from moving the agent's clock, not from waiting for them.
        let clock = ManualClock()
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "5s", clock: clock)
        defer { agent.removeDirectory() }
        let time = clock.autoAdvance()
        defer { time.cancel() }
        let serials = try await agent.streamSecrets { session in
            session.send(request(["default", "ROOTCA"]))
            let first = try await session.next()
            let firstSecrets = try secrets(first)
            #expect(firstSecrets.map(\.name) == ["default", "ROOTCA"])
            #expect(first.typeURL == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret")
            #expect(!first.nonce.isEmpty && !first.versionInfo.isEmpty)
            let certificate = firstSecrets[0].tlsCertificate
            let chain = try Certificate.chain(
                pemEncoded: String(decoding: certificate.certificateChain.inlineBytes, as: UTF8.self)
            )
            let key = try PrivateKey(pemEncoded: String(decoding: certificate.privateKey.inlineBytes, as: UTF8.self))
            let svid = try X509SVID(certificates: chain, privateKey: key)
            #expect(svid.spiffeID.description == "spiffe://example.org/root-workload")
            let roots = try trustDomains(firstSecrets[1])
            #expect(Array(roots.keys) == ["example.org"])
            _ = try X509SVIDVerifier.verify(
                chain,
                bundle: X509Bundle(trustDomain: svid.spiffeID.trustDomain, authorities: roots["example.org"]!),
                at: chain[0].notBefore + CertificateAuthority.backdate + 1
            )

            // ACK; the next message is the rotation.
            session.send(request(["default", "ROOTCA"], version: first.versionInfo, nonce: first.nonce))
            let second = try await session.next()
            #expect(second.nonce != first.nonce)
            let renewed = try Certificate.chain(
                pemEncoded: String(
                    decoding: try secrets(second)[0].tlsCertificate.certificateChain.inlineBytes,
                    as: UTF8.self
                )
            )
            // NACK the second: updates keep coming.
            session.send(
                request(
                    ["default", "ROOTCA"],
                    version: first.versionInfo,
                    nonce: second.nonce,
                    nack: "bad certificate"
                )
            )
            let third = try await session.next()
            let again = try Certificate.chain(
                pemEncoded: String(
                    decoding: try secrets(third)[0].tlsCertificate.certificateChain.inlineBytes,
                    as: UTF8.self
                )
            )
            return [chain[0].serialNumberHex, renewed[0].serialNumberHex, again[0].serialNumberHex]
        }
        await agent.stop()
        #expect(Set(serials).count == 3, "each push carries a renewed certificate: \(serials)")
    }

    @Test("a stale nonce is ignored, and a name the caller may not see is refused")
    func staleAndUnknown() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let names = try await agent.streamSecrets { session in
            session.send(request(["ROOTCA"]))
            let first = try await session.next()
            // A reply to a response that never existed is ignored; a real change of names is answered.
            session.send(request(["default"], nonce: "stale"))
            session.send(request(["default", "ROOTCA"], version: first.versionInfo, nonce: first.nonce))
            return try secrets(try await session.next()).map(\.name)
        }
        #expect(names == ["default", "ROOTCA"])
        do {
            _ = try await agent.streamSecrets { session in
                session.send(request(["spiffe://example.org/not-mine"]))
                return try await session.next().nonce
            }
            Issue.record("an unauthorized name was served")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("not authorized"))
        }
        await agent.stop()
    }

    @Test("ALL carries the federated bundles; a trust-domain ID names one bundle; no names gives everything")
    func federationAndNames() async throws {
        guard isRoot() else { return }
        let directory = TestAgent.makeDirectory()
        let partner = try CertificateAuthority.makeRoot(
            trustDomain: try TrustDomain("partner.org"),
            keyType: .ecP256,
            ttl: .seconds(3600),
            now: Date()
        )
        try Data(partner.certificate.pemEncoded.utf8).write(to: URL(fileURLWithPath: directory + "/partner.pem"))
        let agent = try await TestAgent.start(
            Self.rootEntry
                + "\nfederates_with = [\"partner.org\"]\n\n[[federation]]\ntrust_domain = \"partner.org\"\nbundle_path = \"partner.pem\"\n",
            directory: directory
        )
        defer { agent.removeDirectory() }
        let all = try await agent.streamSecrets { session in
            session.send(request(["ALL"]))
            return try secrets(try await session.next())
        }
        let domains = try trustDomains(all[0])
        #expect(Set(domains.keys) == ["example.org", "partner.org"])
        #expect(domains["partner.org"] == [partner.certificate])
        let byID = try await agent.streamSecrets { session in
            session.send(request(["spiffe://partner.org", "spiffe://example.org/root-workload"]))
            return try secrets(try await session.next())
        }
        #expect(try Array(trustDomains(byID[0]).keys) == ["partner.org"])
        #expect(byID[1].tlsCertificate.hasCertificateChain)
        let everything = try await agent.streamSecrets { session in
            session.send(request([]))
            return try secrets(try await session.next()).map(\.name)
        }
        #expect(everything == ["spiffe://example.org/root-workload", "spiffe://example.org", "spiffe://partner.org"])
        await agent.stop()
    }

    @Test("plain trusted_ca, globally by config or per Envoy by node metadata; FetchSecrets answers once")
    func plainShapeAndFetch() async throws {
        guard isRoot() else { return }
        let plain = try await TestAgent.start(Self.rootEntry + "\n[sds]\ndisable_spiffe_cert_validation = true\n")
        defer { plain.removeDirectory() }
        let global = try await plain.streamSecrets { session in
            session.send(request(["ROOTCA"]))
            return try secrets(try await session.next())
        }
        #expect(!global[0].validationContext.hasCustomValidatorConfig)
        #expect(try trustDomains(global[0])["(plain)"]?.count == 1)
        await plain.stop()

        let agent = try await TestAgent.start(Self.rootEntry)
        defer { agent.removeDirectory() }
        let perNode = try await agent.streamSecrets { session in
            session.send(request(["ROOTCA"], disableSPIFFE: true))
            return try secrets(try await session.next())
        }
        #expect(perNode[0].validationContext.hasTrustedCa)
        let fetched = try await agent.client.withGRPC { grpc in
            try await TestAgent.SDSClient(wrapping: grpc).fetchSecrets(request(["default"]))
        }
        #expect(try secrets(fetched).map(\.name) == ["default"])
        await agent.stop()
    }

    @Test("custom names, as Istio's federation setup configures them")
    func istioFederationNames() async throws {
        guard isRoot() else { return }
        let agent = try await TestAgent.start(
            Self.rootEntry + "\n[sds]\ndefault_bundle_name = \"\"\ndefault_all_bundles_name = \"ROOTCA\"\n"
        )
        defer { agent.removeDirectory() }
        let names = try await agent.streamSecrets { session in
            session.send(request(["default", "ROOTCA"]))
            return try secrets(try await session.next())
        }
        #expect(names.map(\.name) == ["default", "ROOTCA"])
        #expect(names[1].validationContext.hasCustomValidatorConfig)
        await agent.stop()
    }

    @Test("Delta SDS: subscribe, only changed resources, unsubscribe, and removed names")
    func delta() async throws {
        guard isRoot() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(Self.rootEntry, x509SVIDTTL: "4s", clock: clock)
        defer { agent.removeDirectory() }
        let time = clock.autoAdvance()
        defer { time.cancel() }
        let observed = try await agent.deltaSecrets { session in
            var subscribe = DeltaRequest()
            subscribe.typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            subscribe.resourceNamesSubscribe = ["ROOTCA"]
            session.send(subscribe)
            let first = try await session.next()
            var more = DeltaRequest()
            more.responseNonce = first.nonce
            more.resourceNamesSubscribe = ["default"]
            session.send(more)
            let second = try await session.next()
            // After the ACK the next change is a rotation: only "default" changed.
            var ack = DeltaRequest()
            ack.responseNonce = second.nonce
            session.send(ack)
            let third = try await session.next()
            var unsubscribe = DeltaRequest()
            unsubscribe.responseNonce = third.nonce
            unsubscribe.resourceNamesUnsubscribe = ["default"]
            session.send(unsubscribe)
            return [
                first.resources.map(\.name), second.resources.map(\.name), third.resources.map(\.name),
                third.removedResources,
            ]
        }
        #expect(observed[0] == ["ROOTCA"])
        #expect(observed[1] == ["default"], "ROOTCA did not change, so it is not sent again")
        #expect(observed[2] == ["default"])
        #expect(observed[3].isEmpty)

        // A reconnecting Envoy that holds a resource which no longer exists is told it was removed, and one
        // whose version is current is not sent again.
        let rootVersion = try await agent.deltaSecrets { session in
            session.send(DeltaRequest())
            let everything = try await session.next()
            return everything.resources.first { $0.name == "spiffe://example.org" }?.version ?? ""
        }
        #expect(!rootVersion.isEmpty)
        let reconnect = try await agent.deltaSecrets { session in
            var request = DeltaRequest()
            request.initialResourceVersions = ["spiffe://example.org": rootVersion, "spiffe://example.org/gone": "1"]
            session.send(request)
            return try await session.next()
        }
        #expect(reconnect.removedResources == ["spiffe://example.org/gone"])
        #expect(!reconnect.resources.map(\.name).contains("spiffe://example.org"))
        #expect(reconnect.resources.map(\.name).contains("spiffe://example.org/root-workload"))
        do {
            _ = try await agent.deltaSecrets { session in
                var request = DeltaRequest()
                request.resourceNamesSubscribe = ["spiffe://example.org/not-mine"]
                session.send(request)
                return try await session.next().nonce
            }
            Issue.record("an unauthorized delta subscription was served")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
        }
        await agent.stop()
    }
}
