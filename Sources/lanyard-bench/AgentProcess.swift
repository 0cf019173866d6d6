import Foundation
import LanyardTestSupport

/// The real `lanyard run` binary as a child process, with a datagram socket standing in for systemd so the time to
/// `READY=1` is measured exactly as systemd sees it.
final class AgentProcess {
    let process = Process()
    let socketPath: String
    let readyAfter: Duration

    /// Starts the agent with `config` (a TOML text) in `directory` and waits for `READY=1`.
    init(binary: String, directory: String, config: String, timeout: TimeInterval = 120) throws {
        let configPath = directory + "/lanyard.toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        socketPath = directory + "/api.sock"
        let notify = try NotifyListener(path: directory + "/notify-\(UUID().uuidString.prefix(6)).sock")
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", "--config", configPath]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        environment.removeValue(forKey: "JOURNAL_STREAM")
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: directory + "/agent.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: directory + "/agent.log")
        let started = ContinuousClock.now
        try process.run()
        guard notify.wait(for: "READY=1", timeout: timeout) != nil else {
            process.terminate()
            throw BenchError("the agent did not report READY=1 within \(Int(timeout)) s")
        }
        readyAfter = ContinuousClock.now - started
    }

    var pid: Int32 { process.processIdentifier }

    /// SIGTERM, then wait.
    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A child process of this executable running the floor server.
final class FloorProcess {
    let process = Process()
    let socketPath: String

    init(directory: String) throws {
        socketPath = directory + "/floor.sock"
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["floor-server", socketPath]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date() + 30
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard Date() < deadline else { throw BenchError("the floor server did not start") }
            usleep(10_000)
        }
        usleep(100_000)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
