import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import SwiftProtobuf
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Clients that do not speak HTTP/2 or gRPC properly, or hold more than their share, must not hurt the agent: it
/// stays up, releases what they held, and keeps serving well-behaved callers. (A forged credentials header is
/// covered in ``WorkloadAPIIntegrationTests``.)
@Suite("Hostile clients on the Workload API socket", .serialized, .timeLimit(.minutes(5)))
struct HostileClientTests {
    /// An identity for whoever runs the tests, so this needs no root.
    static let entry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:\(getuid())"]

        [[entries]]
        spiffe_id = "spiffe://example.org/nobody"
        selectors = ["unix:uid:65534"]
        """

    static let fetchX509 = "/SpiffeWorkloadAPI/FetchX509SVID"
    static let fetchJWT = "/SpiffeWorkloadAPI/FetchJWTSVID"

    /// Waits until the agent holds at most `expected` sockets (its listener and connections), up to 5 s.
    static func settle(_ agent: TestAgent, at expected: Int) async throws -> Int {
        var count = RawSocketClient.agentSockets(in: agent.directory)
        for _ in 0..<100 where count > expected {
            try await Task.sleep(for: .milliseconds(50))
            count = RawSocketClient.agentSockets(in: agent.directory)
        }
        return count
    }

    @Test("garbage, wrong prefaces, oversized frames, headers and messages, and thousands of dropped connections")
    func survivesMalformedClients() async throws {
        let agent = try await TestAgent.start(Self.entry)
        defer { agent.removeDirectory() }
        let before = RawSocketClient.agentSockets(in: agent.directory)
        #expect(before >= 1, "the listener is visible in /proc/net/unix")
        let preface = HTTP2Bytes.preface + HTTP2Bytes.settings()
        let hostile: [(String, [UInt8])] = [
            ("4 KiB of random bytes", (0..<4096).map { _ in UInt8.random(in: 0...255) }),
            ("an HTTP/1.1 request", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ("a cut HTTP/2 preface", Array("PRI * HTTP/2.0\r\n".utf8)),
            (
                "a frame header announcing 16 MiB",
                preface + [0xFF, 0xFF, 0xFF, 0x00, 0x00, 0, 0, 0, 1] + [UInt8](repeating: 0x41, count: 65_536)
            ),
            (
                "a 1 MiB header value",
                preface
                    + HTTP2Bytes.frame(
                        type: 0x1,
                        flags: 0x4,
                        stream: 1,
                        payload: HTTP2Bytes.requestHeaders(
                            path: Self.fetchJWT,
                            extra: [("x-big", String(repeating: "h", count: 1 << 20))]
                        )
                    )
            ),
            (
                "a gRPC message claiming 64 MiB",
                preface
                    + HTTP2Bytes.call(
                        path: Self.fetchJWT,
                        message: [UInt8](repeating: 0x0A, count: 8192),
                        declaredLength: 64 << 20
                    )
            ),
            (
                "a message that is not protobuf",
                preface + HTTP2Bytes.call(path: Self.fetchJWT, message: [0xFF, 0xFF, 0xFF])
            ),
            ("a call to an unknown method", preface + HTTP2Bytes.call(path: "/No/Such")),
            (
                "a data frame on a stream never opened",
                preface + HTTP2Bytes.frame(type: 0x0, flags: 0x1, stream: 7, payload: [0, 0, 0, 0, 0])
            ),
        ]
        // Raw sockets block (a full backlog blocks connect), so they are driven off Swift's cooperative pool, which
        // the in-process agent needs to accept them.
        let socketPath = agent.socketPath
        for (name, bytes) in hostile {
            let closed = try await offPool { () -> Bool? in
                guard let client = RawSocketClient(path: socketPath) else { return nil }
                defer { client.close() }
                client.send(bytes)
                return client.closedByPeer(within: 2)
            }
            guard let closed else {
                Issue.record("cannot connect for \(name)")
                continue
            }
            print(
                "hostile client: \(name) → \(closed ? "connection closed by the agent" : "ignored, closed by the client")"
            )
        }

        // 2,000 connections opened and dropped, 200 held open at a time.
        let opened = try await offPool {
            var opened = 0
            for _ in 0..<10 {
                let held = (0..<200).compactMap { _ in RawSocketClient(path: socketPath) }
                opened += held.count
                held.forEach { $0.close() }
            }
            return opened
        }
        #expect(opened == 2000)

        // A rapid-reset client: 300 streams opened and cancelled on one connection. HTTP/2's defence may close that
        // connection; nobody else may notice.
        do {
            _ = try await agent.client.withClient { api in
                for _ in 0..<300 {
                    _ = try await api.fetchX509SVID(.init(), metadata: ["workload.spiffe.io": "true"]) { response in
                        for try await _ in response.messages { break }
                    }
                }
            }
        } catch {
            print("rapid-reset client: its connection was closed by the agent (\(error))")
        }

        let response = try await agent.client.fetchX509SVID()
        #expect(response.svids.first?.spiffeID == "spiffe://example.org/root-workload")
        let after = try await Self.settle(agent, at: before)
        #expect(after <= before, "agent sockets: \(before) before, \(after) after")
        print(
            "hostile clients: \(hostile.count) malformed, \(opened) dropped connections, 300 reset streams; agent sockets \(before) before, \(after) after"
        )
        await agent.stop()
    }

    @Test("a caller over its connection or call limit is refused, others are not, and slots return as callers go")
    func perCallerLimits() async throws {
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            Self.entry,
            logs: logs,
            workloadAPI: "max_connections_per_caller = 16\nmax_calls_per_caller = 4"
        )
        defer { agent.removeDirectory() }
        let request = WorkloadAPI_JWTSVIDRequest.with { $0.audience = ["spiffe://example.org/db"] }

        // Four streams held: a fifth call of the same uid, even unary, is refused with a clear status.
        let received = Counter()
        let refused: RPCError? = try await agent.client.withClient { api in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await api.fetchX509SVID(.init(), metadata: ["workload.spiffe.io": "true"]) { response in
                            for try await _ in response.messages {
                                received.value.add(1, ordering: .relaxed)
                                try await Task.sleep(for: .seconds(60))
                            }
                        }
                    }
                }
                while received.value.load(ordering: .relaxed) < 4 { try await Task.sleep(for: .milliseconds(20)) }
                var refusal: RPCError?
                do {
                    _ = try await api.fetchJWTSVID(request, metadata: ["workload.spiffe.io": "true"])
                } catch let error as RPCError {
                    refusal = error
                }
                group.cancelAll()
                return refusal
            }
        }
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message.contains("max_calls_per_caller is 4") == true, "\(String(describing: refused))")
        // The held streams were cancelled: their slots come back.
        var jwt: WorkloadAPI_JWTSVIDResponse?
        for _ in 0..<50 where jwt == nil {
            jwt = try? await agent.client.withClient { api in
                try await api.fetchJWTSVID(request, metadata: ["workload.spiffe.io": "true"])
            }
            if jwt == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(jwt?.svids.count == 1, "a call after the streams ended")

        // Sixteen connections held: the seventeenth of the same uid is closed at once, and a real call fails.
        let socketPath = agent.socketPath
        let held = try await offPool { (0..<16).compactMap { _ in RawSocketClient(path: socketPath) } }
        #expect(held.count == 16)
        try await Task.sleep(for: .milliseconds(200))
        let closed = try await offPool { () -> Bool in
            guard let extra = RawSocketClient(path: socketPath) else { return false }
            defer { extra.close() }
            return extra.closedByPeer(within: 5)
        }
        #expect(closed, "a connection over the limit must be closed")
        await #expect(throws: RPCError.self) { _ = try await agent.client.fetchX509SVID() }
        if getuid() == 0 {
            // Another uid has its own budget.
            let cli = try LanyardCLI(copyInto: agent.directory)
            let nobody = try await cli.run(
                ["api", "fetch", "x509", "--socket", agent.socketPath],
                uid: 65534,
                gid: 65534
            )
            #expect(nobody.status == 0, "\(nobody.stderr)")
            #expect(nobody.stdout.contains("spiffe://example.org/nobody"))
        } else {
            print("skipped the other-uid part of the limits test: it needs root to run a client as uid 65534")
        }
        held.forEach { $0.close() }
        var svid: WorkloadAPI_X509SVIDResponse?
        for _ in 0..<50 where svid == nil {
            svid = try? await agent.client.fetchX509SVID()
            if svid == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(svid?.svids.first?.spiffeID == "spiffe://example.org/root-workload")
        #expect(logs.all.contains { $0.contains("caller refused") && $0.contains("max_calls_per_caller") })
        #expect(logs.all.contains { $0.contains("caller refused") && $0.contains("max_connections_per_caller") })
        await agent.stop()
    }

    @Test("callers killed in the middle of their streams give their slots back")
    func killedCallersReleaseTheirCalls() async throws {
        let agent = try await TestAgent.start(Self.entry, workloadAPI: "max_calls_per_caller = 3")
        defer { agent.removeDirectory() }
        let cli = try LanyardCLI(copyInto: agent.directory)
        for round in 1...3 {
            var watchers: [(process: ChildProcess, log: String)] = []
            for index in 0..<3 {
                let log = agent.directory + "/watch-\(round)-\(index).log"
                let process = try await ChildProcess.start(
                    [cli.binary, "api", "watch", "--socket", agent.socketPath],
                    outputPath: log
                )
                watchers.append((process, log))
            }
            for watcher in watchers {
                var text = ""
                for _ in 0..<250 {
                    text = (try? String(contentsOfFile: watcher.log, encoding: .utf8)) ?? ""
                    if text.contains("received 1 svid") { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(text.contains("received 1 svid"), "round \(round): \(text)")
            }
            for watcher in watchers { watcher.process.signal(SIGKILL) }
            for watcher in watchers { await watcher.process.waitUntilExit() }
        }
        // Nine callers died holding every slot in turn; each round found its slots free, and so does this call.
        var svid: WorkloadAPI_X509SVIDResponse?
        for _ in 0..<50 where svid == nil {
            svid = try? await agent.client.fetchX509SVID()
            if svid == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(svid?.svids.count == 1)
        await agent.stop()
    }

    @Test("streams whose readers never read do not hold back rotation or other callers")
    func slowReaders() async throws {
        let clock = ManualClock()
        let agent = try await TestAgent.start(Self.entry, x509SVIDTTL: "4s", clock: clock)
        defer { agent.removeDirectory() }
        // 100 connections, each with a FetchX509SVID and an SDS stream, and a zero flow-control window: the agent
        // can send them nothing but headers.
        let socketPath = agent.socketPath
        let readers = try await offPool {
            (0..<100).compactMap { _ -> RawSocketClient? in
                guard let client = RawSocketClient(path: socketPath) else { return nil }
                client.send(
                    HTTP2Bytes.preface + HTTP2Bytes.settings(initialWindow: 0)
                        + HTTP2Bytes.call(path: Self.fetchX509, stream: 1)
                        + HTTP2Bytes.call(
                            path: "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
                            stream: 3
                        )
                )
                return client
            }
        }
        #expect(readers.count == 100)

        // A well-behaved watcher sees the SVID rotate (every ~2 s of the agent's clock at a 4 s TTL) while they sit
        // there. Time moves whenever the agent is idle; the watch gives up after 30 s of real time.
        let time = clock.autoAdvance()
        defer { time.cancel() }
        let serials = try await agent.client.withClient { api in
            try await api.fetchX509SVID(.init(), metadata: ["workload.spiffe.io": "true"]) { response in
                var serials = Set<Data>()
                let deadline = Date() + 30
                for try await message in response.messages {
                    serials.insert(message.svids.first?.x509Svid ?? Data())
                    if serials.count >= 3 || Date() > deadline { break }
                }
                return serials.count
            }
        }
        time.cancel()
        #expect(serials >= 3, "the watcher saw \(serials) SVIDs")
        let jwt = try await agent.client.withClient { api in
            try await api.fetchJWTSVID(
                .with { $0.audience = ["x"] },
                metadata: ["workload.spiffe.io": "true"]
            )
        }
        #expect(jwt.svids.count == 1)
        readers.forEach { $0.close() }
        let after = try await Self.settle(agent, at: 1)
        #expect(after <= 1, "agent sockets after the slow readers left: \(after)")
        print(
            "slow readers: 200 unread streams on 100 connections; the watcher saw \(serials) SVIDs; agent sockets \(after) after"
        )
        await agent.stop()
    }
}

/// A count shared between tasks.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
