import LanyardProto
import SwiftProtobuf
import Testing

@testable import Endpoints

/// The state-of-the-world SDS rules, one event at a time, without a socket.
@Suite("SDS state of the world (StreamSecrets)")
struct SecretStreamTests {
    typealias Request = SecretStream.Request

    func request(_ names: [String], version: String = "", nonce: String = "", nack: String? = nil) -> Request {
        var request = Request()
        request.resourceNames = names
        request.versionInfo = version
        request.responseNonce = nonce
        if let nack { request.errorDetail.message = nack }
        return request
    }

    func stream() -> SecretStream {
        var stream = SecretStream(config: SDSConfig())
        let nonces = Fixtures.Nonces()
        stream.makeNonce = { nonces.make() }
        return stream
    }

    func sent(_ actions: [SecretStream.Action]) -> [SecretStream.Response] {
        actions.compactMap { if case .send(let response) = $0 { response } else { nil } }
    }

    func names(_ response: SecretStream.Response) throws -> [String] {
        try response.resources.map { try SecretStream.Secret(unpackingAny: $0).name }
    }

    @Test("a request is answered once the caller's view is known, with a version and a nonce; an ACK is not answered")
    func answersAndAcks() throws {
        var stream = stream()
        #expect(try stream.handle(.request(request(["default", "ROOTCA"]))).isEmpty, "nothing to send before an update")
        let first = sent(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")]))))
        #expect(first.count == 1)
        #expect(try names(first[0]) == ["default", "ROOTCA"])
        #expect(first[0].versionInfo == "1" && first[0].nonce == "n1")
        #expect(first[0].typeURL == SDSResources.secretTypeURL)
        // The ACK: same names, the current nonce.
        #expect(try stream.handle(.request(request(["default", "ROOTCA"], version: "1", nonce: "n1"))).isEmpty)
        // An update that changes nothing the caller asked for sends nothing.
        #expect(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")]))).isEmpty)
        // A renewal does.
        let renewed = sent(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web", generation: 2)]))))
        #expect(renewed.map(\.versionInfo) == ["2"] && renewed.map(\.nonce) == ["n2"])
    }

    @Test("a NACK is reported with Envoy's detail and later updates still go out")
    func nack() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(["default"])))
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        let actions = try stream.handle(.request(request(["default"], version: "0", nonce: "n1", nack: "bad certificate")))
        #expect(actions == [.nack(version: "0", detail: "bad certificate")])
        let next = sent(try stream.handle(.update(Fixtures.update([Fixtures.svid("/web", generation: 2)]))))
        #expect(next.count == 1 && next[0].nonce == "n2")
    }

    @Test("a request answering a superseded nonce is stale: ignored, even with new names")
    func staleNonce() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(["ROOTCA"])))
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")], bundleGeneration: 2)))
        #expect(stream.nonce == "n2")
        #expect(try stream.handle(.request(request(["default"], version: "1", nonce: "n1"))).isEmpty)
        #expect(stream.names == ["ROOTCA"])
        let answered = sent(try stream.handle(.request(request(["default", "ROOTCA"], version: "2", nonce: "n2"))))
        #expect(try answered.map(names) == [["default", "ROOTCA"]])
    }

    @Test("a name the caller may not see ends the stream with the names")
    func unauthorized() throws {
        var stream = stream()
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        #expect(throws: SDSStreamError.unauthorized(["spiffe://example.org/db"])) {
            try stream.handle(.request(request(["spiffe://example.org/web", "spiffe://example.org/db"])))
        }
    }

    @Test("an identity that disappears from the caller's view ends a stream that asked for it by name")
    func identityRemoved() throws {
        var stream = stream()
        _ = try stream.handle(.request(request(["spiffe://example.org/web"])))
        _ = try stream.handle(.update(Fixtures.update([Fixtures.svid("/web")])))
        #expect(throws: SDSStreamError.unauthorized(["spiffe://example.org/web"])) {
            try stream.handle(.update(Fixtures.update([])))
        }
    }
}
