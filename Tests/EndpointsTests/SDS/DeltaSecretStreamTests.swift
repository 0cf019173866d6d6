import LanyardProto
import SwiftProtobuf
import Testing

@testable import Endpoints

/// The incremental SDS rules, one event at a time, without a socket.
@Suite("SDS delta (DeltaSecrets)")
struct DeltaSecretStreamTests {
    typealias Request = DeltaSecretStream.Request

    func request(
        subscribe: [String] = [],
        unsubscribe: [String] = [],
        nonce: String = "",
        initial: [String: String] = [:],
        nack: String? = nil
    ) -> Request {
        var request = Request()
        request.typeURL = SDSResources.secretTypeURL
        request.resourceNamesSubscribe = subscribe
        request.resourceNamesUnsubscribe = unsubscribe
        request.responseNonce = nonce
        request.initialResourceVersions = initial
        if let nack { request.errorDetail.message = nack }
        return request
    }

    func stream() -> DeltaSecretStream {
        var stream = DeltaSecretStream(config: SDSConfig())
        let nonces = Fixtures.Nonces()
        stream.makeNonce = { nonces.make() }
        return stream
    }

    func response(_ actions: [DeltaSecretStream.Action]) -> DeltaSecretStream.Response? {
        actions.compactMap { if case .send(let response) = $0 { response } else { nil } }.first
    }

    @Test("subscribe sends only what changed; unsubscribe forgets a name; a renewal sends that one resource")
    func subscribeAndUnsubscribe() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(subscribe: ["ROOTCA"])))
        let first = try #require(response(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))))
        #expect(first.resources.map(\.name) == ["ROOTCA"])
        let second = try #require(response(try stream.handle(.request(request(subscribe: ["default"], nonce: "n1")))))
        #expect(second.resources.map(\.name) == ["default"], "ROOTCA did not change")
        let renewal = try #require(
            response(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web", generation: 2)]))))
        )
        #expect(renewal.resources.map(\.name) == ["default"])
        #expect(renewal.removedResources.isEmpty)
        #expect(response(try stream.handle(.request(request(unsubscribe: ["default"], nonce: "n3")))) == nil)
        #expect(stream.subscribed == ["ROOTCA"])
        #expect(response(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web", generation: 3)])))) == nil)
    }

    @Test("a re-subscribing Envoy with initial versions gets only what it lacks, and removals for what is gone")
    func initialVersions() throws {
        var first = stream()
        let all = try #require(
            response(
                try { () throws(SDSStreamError) -> [DeltaSecretStream.Action] in
                    _ = try first.handle(.request(request()))
                    return try first.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
                }()
            )
        )
        let rootVersion = try #require(all.resources.first { $0.name == "spiffe://example.org" }?.version)
        var reconnect = stream()
        _ = try reconnect.handle(
            .request(request(initial: ["spiffe://example.org": rootVersion, "spiffe://example.org/gone": "7"]))
        )
        let answer = try #require(response(try reconnect.handle(.update(Fixtures.update([Fixtures.svid("/web")])))))
        #expect(answer.removedResources == ["spiffe://example.org/gone"])
        #expect(answer.resources.map(\.name) == ["spiffe://example.org/web"], "the current bundle is not sent again")
    }

    @Test("a NACK is reported; a stale nonce is ignored; an unauthorized name ends the stream")
    func nackStaleUnauthorized() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(subscribe: ["default"])))
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        #expect(try stream.handle(.request(request(nonce: "n1", nack: "no"))) == [.nack(version: "", detail: "no")])
        #expect(try stream.handle(.request(request(subscribe: ["ROOTCA"], nonce: "stale"))).isEmpty)
        #expect(stream.subscribed == ["default"])
        #expect(throws: SDSStreamError.unauthorized(["spiffe://example.org/not-mine"])) {
            try stream.handle(.request(request(subscribe: ["spiffe://example.org/not-mine"], nonce: "n1")))
        }
    }

    @Test("names asked for before the first update are checked against it")
    func pendingCheck() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(subscribe: ["spiffe://example.org/db"])))
        #expect(throws: SDSStreamError.unauthorized(["spiffe://example.org/db"])) {
            try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        }
    }
}
