import Foundation
import LanyardTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The real `lanyard run` binary as a child process, with a datagram socket standing in for systemd so the time to
/// `READY=1` is measured exactly as systemd sees it.
final class AgentProcess: Sendable {
    let process: ChildProcess
    let socketPath: String
    let readyAfter: Duration

    /// Starts the agent with `config` (a TOML text) in `directory` and waits for `READY=1`.
    init(binary: String, directory: String, config: String, timeout: TimeInterval = 120) async throws {
        let configPath = directory + "/lanyard.toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        // Private, as the agent requires of a file that may hold a join token.
        chmod(configPath, 0o600)
        socketPath = directory + "/api.sock"
        let notify = try NotifyListener(path: directory + "/notify-\(UUID().uuidString.prefix(6)).sock")
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        environment.removeValue(forKey: "JOURNAL_STREAM")
        let started = ContinuousClock.now
        process = try await ChildProcess.start(
            [binary, "run", "--config", configPath],
            environment: environment,
            errorPath: directory + "/agent.log"
        )
        guard notify.wait(for: "READY=1", timeout: timeout) != nil else {
            process.stop()
            throw BenchError("the agent did not report READY=1 within \(Int(timeout)) s")
        }
        readyAfter = ContinuousClock.now - started
    }

    var pid: Int32 { process.pid }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    func stop() { process.stop(SIGTERM, grace: .seconds(30)) }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A child process of this executable running the floor server.
final class FloorProcess: Sendable {
    let process: ChildProcess
    let socketPath: String

    /// With `sdsResponse`, a file holding a serialized `DiscoveryResponse`, the floor serves SDS too.
    init(directory: String, sdsResponse: String? = nil) async throws {
        socketPath = directory + "/floor.sock"
        process = try await ChildProcess.start(
            [CommandLine.arguments[0], "floor-server", socketPath] + (sdsResponse.map { [$0] } ?? [])
        )
        let deadline = Date() + 30
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard Date() < deadline else { throw BenchError("the floor server did not start") }
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(100))
    }

    func stop() { process.stop(SIGTERM) }
}
