import Foundation
import GRPCCore
import GRPCInProcessTransport
import LanyardProto
import Logging
import SPIFFE
import SwiftProtobuf
import Synchronization
import Testing

@testable import Endpoints

/// A backend whose answers the test sets: the caller's selectors, the view it sees (pushed on demand), tokens.
final class FakeBackend: WorkloadAPIBackend {
    final class Pin: CallerPin {
        let valid: Mutex<Bool>
        init(valid: Bool) { self.valid = Mutex(valid) }
        func verify() throws {
            guard valid.withLock({ $0 }) else {
                throw WorkloadAPIError(.callerChanged, "caller credentials changed since it connected; reconnect")
            }
        }
    }

    let identity: Mutex<WorkloadUpdate>
    let subscribers = Mutex<[AsyncStream<WorkloadUpdate>.Continuation]>([])
    let attestations = Mutex(0)

    init(_ update: WorkloadUpdate) {
        identity = Mutex(update)
    }

    func pin(_ credentials: WorkloadProcess, process: PeerProcess) -> any CallerPin {
        Pin(valid: true)
    }

    func attest(_ caller: ConnectedCaller) async throws -> AttestedCaller {
        attestations.withLock { $0 += 1 }
        try caller.pin.verify()
        return AttestedCaller(
            credentials: caller.credentials,
            selectors: [try Selector("unix:uid:1000")],
            pin: caller.pin
        )
    }

    func subscribe(_ caller: AttestedCaller, to continuation: AsyncStream<WorkloadUpdate>.Continuation) {
        continuation.yield(identity.withLock { $0 })
        subscribers.withLock { $0.append(continuation) }
    }

    /// Makes `update` the caller's view and pushes it to every stream.
    func push(_ update: WorkloadUpdate) {
        identity.withLock { $0 = update }
        for subscriber in subscribers.withLock({ $0 }) { subscriber.yield(update) }
    }

    func jwtSVIDs(for caller: AttestedCaller, audience: [String], spiffeID: SPIFFEID?) async throws -> [WorkloadJWTSVID]
    {
        identity.withLock { $0 }.svids.map {
            WorkloadJWTSVID(spiffeID: $0.spiffeID, token: "token-for-\(audience.joined(separator: ","))", hint: $0.hint)
        }
    }

    func validateJWTSVID(_ token: String, audience: String, for caller: AttestedCaller) async throws -> ValidatedJWTSVID
    {
        throw WorkloadAPIError(.invalidRequest, "token is malformed")
    }
}

/// The Workload API and SDS handlers over grpc's in-process transport: every status code and stream rule in
/// milliseconds, with the caller registered as `PeerCredentialHandler` would register it.
@Suite("Workload API and SDS handlers, in process")
struct HandlerTests {
    /// Runs `body` with a client of both services, whose calls carry `header` (the registered caller's number
    /// unless the test says otherwise).
    static func withHandlers<Result: Sendable>(
        _ backend: FakeBackend,
        pinValid: Bool = true,
        _ body: @Sendable (GRPCClient<InProcessTransport.Client>, _ header: Metadata) async throws -> Result
    ) async throws -> Result {
        let callers = ConnectedCallers()
        let pin = FakeBackend.Pin(valid: pinValid)
        let anchor = NSObject()
        let number = callers.add(
            ConnectedCaller(credentials: WorkloadProcess(pid: 4242, uid: 1000, gid: 1000), pin: pin),
            connection: ObjectIdentifier(anchor)
        )
        let logger = Logger(label: "handler-tests")
        let transport = InProcessTransport()
        let services: [any RegistrableRPCService] = [
            WorkloadAPIHandler(backend: backend, callers: callers, logger: logger),
            SDSHandler(backend: backend, callers: callers, config: SDSConfig(), logger: logger),
        ]
        return try await withGRPCServer(transport: transport.server, services: services) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                try await body(
                    client,
                    ["workload.spiffe.io": "true", PeerCredentialHandler.headerName: "\(number)"]
                )
            }
        }
    }

    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    @Test("status codes: no security header, no caller, no identity, a caller that changed")
    func statusCodes() async throws {
        let backend = FakeBackend(Fixtures.update([Fixtures.svid("/web")]))
        try await Self.withHandlers(backend) { client, header in
            let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
            var noSecurity = header
            noSecurity.removeAllValues(forKey: "workload.spiffe.io")
            #expect(
                await Self.code { _ = try await api.fetchJWTSVID(.with { $0.audience = ["a"] }, metadata: noSecurity) }
                    == .invalidArgument
            )
            var noCaller = header
            noCaller.removeAllValues(forKey: PeerCredentialHandler.headerName)
            #expect(
                await Self.code { _ = try await api.fetchJWTSVID(.with { $0.audience = ["a"] }, metadata: noCaller) }
                    == .unauthenticated
            )
            var unknownCaller = header
            unknownCaller.replaceOrAddString("999", forKey: PeerCredentialHandler.headerName)
            #expect(
                await Self.code {
                    _ = try await api.fetchJWTSVID(.with { $0.audience = ["a"] }, metadata: unknownCaller)
                } == .unauthenticated
            )
            let token = try await api.fetchJWTSVID(.with { $0.audience = ["a", "b"] }, metadata: header)
            #expect(token.svids.map(\.svid) == ["token-for-a,b"])
        }
        let nobody = FakeBackend(Fixtures.update([]))
        try await Self.withHandlers(nobody) { client, header in
            let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
            #expect(
                await Self.code { _ = try await api.fetchJWTSVID(.with { $0.audience = ["a"] }, metadata: header) }
                    == .permissionDenied
            )
            #expect(
                await Self.code {
                    try await api.fetchX509SVID(.init(), metadata: header) { response in
                        for try await _ in response.messages {}
                    }
                } == .permissionDenied
            )
        }
        try await Self.withHandlers(backend, pinValid: false) { client, header in
            let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
            #expect(
                await Self.code { _ = try await api.fetchJWTSVID(.with { $0.audience = ["a"] }, metadata: header) }
                    == .unauthenticated
            )
        }
    }

    @Test("an agent that does not issue WIT-SVIDs answers both WIT-SVID calls UNIMPLEMENTED, as the standard says")
    func witUnimplemented() async throws {
        let backend = FakeBackend(Fixtures.update([Fixtures.svid("/web")]))
        try await Self.withHandlers(backend) { client, header in
            let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
            #expect(
                await Self.code {
                    try await api.fetchWITSVID(WorkloadAPI_WITSVIDRequest(), metadata: header) { response in
                        for try await _ in response.messages {}
                    }
                } == .unimplemented
            )
            #expect(
                await Self.code {
                    try await api.fetchWITBundles(WorkloadAPI_WITBundlesRequest(), metadata: header) { response in
                        for try await _ in response.messages {}
                    }
                } == .unimplemented
            )
        }
    }

    @Test("FetchJWTSVID refuses an empty audience, more than 32, and one over 1 KiB")
    func audienceBounds() async throws {
        let backend = FakeBackend(Fixtures.update([Fixtures.svid("/web")]))
        try await Self.withHandlers(backend) { client, header in
            let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
            for audience in [[], (0..<33).map { "a\($0)" }, [String(repeating: "x", count: 1025)], [""]] {
                #expect(
                    await Self.code {
                        _ = try await api.fetchJWTSVID(.with { $0.audience = audience }, metadata: header)
                    } == .invalidArgument
                )
            }
            _ = try await api.fetchJWTSVID(.with { $0.audience = (0..<32).map { "a\($0)" } }, metadata: header)
        }
    }

    @Test("an X509-SVID stream sends each distinct update once, and ends when the caller's pin fails")
    func x509Stream() async throws {
        let backend = FakeBackend(Fixtures.update([Fixtures.svid("/web")]))
        let callers = ConnectedCallers()
        let pin = FakeBackend.Pin(valid: true)
        let anchor = NSObject()
        let number = callers.add(
            ConnectedCaller(credentials: WorkloadProcess(pid: 4242, uid: 1000, gid: 1000), pin: pin),
            connection: ObjectIdentifier(anchor)
        )
        let transport = InProcessTransport()
        let handler = WorkloadAPIHandler(backend: backend, callers: callers, logger: Logger(label: "t"))
        let received = try await withGRPCServer(transport: transport.server, services: [handler]) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                let api = WorkloadAPI_SpiffeWorkloadAPI.Client(wrapping: client)
                let metadata: Metadata = ["workload.spiffe.io": "true", PeerCredentialHandler.headerName: "\(number)"]
                return try await api.fetchX509SVID(.init(), metadata: metadata) { response in
                    var serials: [Data] = []
                    do {
                        for try await message in response.messages {
                            serials.append(message.svids[0].x509Svid)
                            switch serials.count {
                            case 1:
                                backend.push(Fixtures.update([Fixtures.svid("/web")]))  // the same view: not sent
                                backend.push(Fixtures.update([Fixtures.svid("/web", generation: 2)]))
                            case 2:
                                pin.valid.withLock { $0 = false }  // the process exec'ed a setuid program
                                backend.push(Fixtures.update([Fixtures.svid("/web", generation: 3)]))
                            default:
                                break
                            }
                        }
                    } catch let error as RPCError {
                        #expect(error.code == .unauthenticated)
                    }
                    return serials
                }
            }
        }
        #expect(received == [Data("chain /web 1".utf8), Data("chain /web 2".utf8)])
    }

    @Test("SDS over the in-process transport: Istio's names answered, an unauthorized name refused")
    func sdsStream() async throws {
        let backend = FakeBackend(Fixtures.update([Fixtures.svid("/web")]))
        try await Self.withHandlers(backend) { client, header in
            let sds = Envoy_Service_Secret_V3_SecretDiscoveryService.Client(wrapping: client)
            let names = try await sds.streamSecrets(
                metadata: header,
                requestProducer: { writer in
                    try await writer.write(.with { $0.resourceNames = ["default", "ROOTCA"] })
                },
                onResponse: { response in
                    for try await message in response.messages {
                        return try message.resources.map {
                            try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: $0).name
                        }
                    }
                    return []
                }
            )
            #expect(names == ["default", "ROOTCA"])
            let refused = await Self.code {
                _ = try await sds.streamSecrets(
                    metadata: header,
                    requestProducer: { writer in
                        try await writer.write(.with { $0.resourceNames = ["spiffe://example.org/db"] })
                    },
                    onResponse: { response in
                        for try await _ in response.messages {}
                    }
                )
            }
            #expect(refused == .invalidArgument)
        }
    }
}
