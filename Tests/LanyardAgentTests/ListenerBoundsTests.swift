import Endpoints
import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a crowd of idle or oversized clients gets from the agent's listeners: closed, refused, and no hold on
/// anyone else.
@Suite(
    "Listener bounds: idle connections, oversized requests, the health listener",
    .serialized,
    .timeLimit(.minutes(5))
)
struct ListenerBoundsTests {
    /// A TCP connection to 127.0.0.1:`port` that sends nothing.
    static func connectTCP(port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Whether the peer closed `descriptor` (a read returns end of file) within `timeout` seconds.
    static func closedByPeer(_ descriptor: Int32, within timeout: TimeInterval) -> Bool {
        RawSocketClient(descriptor: descriptor).closedByPeer(within: timeout)
    }

    @Test("the health listener serves 32 connections at once, closes the rest, and drops silent ones after its timeout")
    func healthListener() async throws {
        let server = HealthServer(
            host: "127.0.0.1",
            port: 0,
            probes: .init(readiness: { (true, "ready") }, metrics: { "" }),
            logger: Logger(label: "health-test"),
            requestTimeout: .seconds(1)
        )
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let serving = Task { try await server.run { portContinuation.yield($0) } }
        defer { serving.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let descriptors = (0..<48).compactMap { _ in Self.connectTCP(port: port) }
        defer { descriptors.forEach { close($0) } }
        #expect(descriptors.count == 48)
        // The 16 over the bound are closed at once; the 32 served are closed once they have said nothing for 1 s.
        let closedAtOnce = try await offPool { descriptors.filter { Self.closedByPeer($0, within: 0.5) }.count }
        #expect(closedAtOnce >= 16, "only \(closedAtOnce) of 48 silent connections were turned away")
        let closedLater = try await offPool { descriptors.filter { Self.closedByPeer($0, within: 5) }.count }
        #expect(closedLater == 48, "\(48 - closedLater) silent connections stayed open past the timeout")
        // Once they are gone (the server counts a connection out when its handler returns, just after the client saw
        // it close) the listener answers again.
        var live = ""
        for _ in 0..<50 where live != "live\n" {
            live = try await LanyardCLI.runTool(["/usr/bin/curl", "-s", "http://127.0.0.1:\(port)/live"]).stdout
            if live != "live\n" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(live == "live\n")
    }

    @Test("a Workload API connection with no call open is closed after connection_idle_timeout")
    func idleConnections() async throws {
        let agent = try await TestAgent.start(
            HostileClientTests.entry,
            workloadAPI: "connection_idle_timeout = \"1s\""
        )
        defer { agent.removeDirectory() }
        let silent = try #require(RawSocketClient(path: agent.socketPath))
        let prefaced = try #require(RawSocketClient(path: agent.socketPath))
        prefaced.send(HTTP2Bytes.preface + HTTP2Bytes.settings())
        #expect(try await offPool { silent.closedByPeer(within: 10) }, "a connection that never spoke stayed open")
        #expect(try await offPool { prefaced.closedByPeer(within: 10) }, "a connection with no call stayed open")
        silent.close()
        prefaced.close()
        // A connection that opens a stream is served. (On a loaded machine a new connection can take longer than
        // the 1 s timeout to send its first call and is closed, as it should be: that attempt is made again.)
        var received = 0
        for _ in 0..<3 where received == 0 {
            received = (try? await agent.client.watchX509SVID(count: 1).count) ?? 0
        }
        #expect(received == 1)
        await agent.stop()
    }

    @Test("a request over 256 KiB is refused (gRPC resets the stream), and the agent keeps serving")
    func oversizedRequest() async throws {
        let agent = try await TestAgent.start(HostileClientTests.entry)
        defer { agent.removeDirectory() }
        let audiences = (0..<300).map { "\($0)" + String(repeating: "a", count: 1000) }
        do {
            _ = try await agent.client.fetchJWTSVID(audience: audiences)
            Issue.record("a 300 KiB request was served")
        } catch let error as RPCError {
            // gRPC's deframer refuses the message and resets the stream without a status: the client sees the
            // stream end as UNAVAILABLE.
            #expect(error.code == .unavailable || error.code == .resourceExhausted, "\(error)")
        }
        #expect(try await agent.client.fetchJWTSVID(audience: ["api"]).svids.count == 1)
        await agent.stop()
    }
}
