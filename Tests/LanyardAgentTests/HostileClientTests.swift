import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Clients that do not speak HTTP/2 or gRPC properly must not hurt the agent: it stays up, releases what they held,
/// and keeps serving well-behaved callers.
@Suite("Hostile clients on the Workload API socket", .serialized)
struct HostileClientTests {
    /// An identity for whoever runs the tests, so this needs no root.
    static let entry = """
        [[entries]]
        spiffe_id = "spiffe://example.org/root-workload"
        selectors = ["unix:uid:\(getuid())"]
        """

    /// A raw connection to the socket, or nil.
    static func connect(_ path: String) -> Int32? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    @Test("garbage, a wrong preface, oversized headers and thousands of abandoned connections leave it serving")
    func survives() async throws {
        let agent = try await TestAgent.start(Self.entry)
        defer { agent.removeDirectory() }
        let before = Self.openDescriptors()
        var tried = 0

        // Random bytes, an HTTP/1.1 request, a truncated HTTP/2 preface, and a preface followed by a 1 MiB frame header.
        let payloads: [[UInt8]] = [
            (0..<4096).map { _ in UInt8.random(in: 0...255) },
            Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            Array("PRI * HTTP/2.0\r\n".utf8),
            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0xFF, 0xFF, 0xFF, 0x01, 0x04, 0, 0, 0, 1]
                + [UInt8](repeating: 0x41, count: 65_536),
        ]
        for payload in payloads {
            guard let descriptor = Self.connect(agent.socketPath) else {
                Issue.record("cannot connect")
                continue
            }
            _ = payload.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(descriptor)
            tried += 1
        }

        // 2,000 connections opened and dropped, 200 at a time held open first.
        for _ in 0..<10 {
            let held = (0..<200).compactMap { _ in Self.connect(agent.socketPath) }
            #expect(held.count == 200)
            held.forEach { close($0) }
            tried += held.count
        }

        // A rapid-reset client: 300 streams opened and cancelled on one connection. HTTP/2's defence may close that
        // connection; nobody else may notice.
        let resets: Int?
        do {
            resets = try await agent.client.withClient { api in
                var opened = 0
                for _ in 0..<300 {
                    _ = try await api.fetchX509SVID(.init(), metadata: ["workload.spiffe.io": "true"]) { response in
                        for try await _ in response.messages { break }
                    }
                    opened += 1
                }
                return opened
            }
        } catch {
            print("rapid-reset client: its connection was closed by the server (\(error))")
            resets = nil
        }
        tried += resets ?? 300

        // Still serving, and the descriptors the dropped connections held are released.
        let response = try await agent.client.fetchX509SVID()
        #expect(response.svids.first?.spiffeID == "spiffe://example.org/root-workload")
        var settled = false
        for _ in 0..<100 where !settled {
            settled = Self.openDescriptors() <= before + 16
            if !settled { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(settled, "descriptors: \(before) before, \(Self.openDescriptors()) after \(tried) hostile connections")
        print(
            "hostile clients: \(tried) connections and streams tried; descriptors \(before) before, \(Self.openDescriptors()) after"
        )
        await agent.stop()
    }
}
