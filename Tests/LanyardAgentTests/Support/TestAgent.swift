import Foundation
import LanyardAgent
import LanyardTestSupport
import Logging
import Synchronization
import Timing

/// A real agent on a temporary socket, started in this process, for integration tests.
final class TestAgent: Sendable {
    let directory: String
    let socketPath: String
    let configPath: String

    /// The admin endpoint's socket (in a directory of its own, as the config requires).
    var adminSocketPath: String { directory + "/private/admin.sock" }
    private let task: Task<Void, any Error>

    var client: WorkloadAPIClient { WorkloadAPIClient(socketPath: socketPath) }

    /// Starts an agent whose config is `body` (entries, federation…) below the common header, and `topLevel` keys
    /// in it.
    static func start(
        _ body: String,
        x509SVIDTTL: String = "1h",
        directory: String? = nil,
        allowUnauthenticatedVerifiers: Bool = false,
        logs: LogCapture? = nil,
        upstream: String? = nil,
        workloadAPI: String = "",
        topLevel: String = "",
        admin: String = "",
        auditLogs: LogCapture? = nil,
        clock: (any AgentClock)? = nil
    ) async throws -> TestAgent {
        let directory = directory ?? TestAgent.makeDirectory()
        let socketPath = directory + "/api.sock"
        let configPath = directory + "/lanyard.toml"
        let config = """
            trust_domain = "example.org"
            data_dir = "\(directory)/data"
            log_level = "warning"
            \(topLevel)

            [workload_api]
            socket_path = "\(socketPath)"
            allow_unauthenticated_verifiers = \(allowUnauthenticatedVerifiers)
            \(workloadAPI)

            [health]
            listen = ""

            [admin]
            socket_path = "\(directory)/private/admin.sock"
            \(admin)

            \(upstream ?? "[upstream.local]\nx509_svid_ttl = \"\(x509SVIDTTL)\"")

            \(body)
            """
        try writePrivateFile(config, to: configPath)
        let agentConfig = try AgentConfig.load(path: configPath)
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        // The level follows a box, as under `lanyard run`, so `lanyard log-level` can change it.
        let level = LogLevelBox(.warning)
        let agentLogger = Logger(label: "test-agent") { label in
            let inner: any LogHandler = logs ?? StreamLogHandler.standardError(label: label)
            return LevelFollowingLogHandler(inner, box: level)
        }
        let task = Task {
            defer { readyContinuation.finish() }
            try await Agent(
                config: agentConfig,
                logger: agentLogger,
                logLevel: level,
                auditLogger: auditLogs.map { logs in Logger(label: "lanyard.audit") { _ in logs } },
                cancellationLimit: .seconds(120),
                clock: clock ?? SystemClock()
            ).run {
                readyContinuation.yield()
            }
        }
        // A bound on readiness, so an agent that can never become ready (a fleet agent whose token was spent by an
        // attempt it gave up on) fails its test instead of hanging the whole suite.
        let timeout = Task {
            try await Task.sleep(for: .seconds(90))
            readyContinuation.finish()
        }
        defer { timeout.cancel() }
        var iterator = ready.makeAsyncIterator()
        guard await iterator.next() != nil else {
            task.cancel()
            _ = try await task.value  // the agent's own failure, when it stopped by itself
            throw TestAgentError("the agent did not become ready within 90 s")
        }
        return TestAgent(directory: directory, socketPath: socketPath, configPath: configPath, task: task)
    }

    private init(directory: String, socketPath: String, configPath: String, task: Task<Void, any Error>) {
        self.directory = directory
        self.socketPath = socketPath
        self.configPath = configPath
        self.task = task
    }

    /// Stops the agent and waits until it has.
    func stop() async {
        let started = ContinuousClock.now
        task.cancel()
        _ = try? await task.value
        // Under systemd the agent has 5 s to stop once cancelled; say when a test agent needed longer.
        let took = ContinuousClock.now - started
        if took > .seconds(5) { print("slow stop: the agent in \(directory) took \(took) to stop") }
    }

    /// A fresh directory that other uids can traverse (for their client processes).
    static func makeDirectory() -> String {
        let path = "/tmp/lanyard-it-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(
            atPath: path,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        return path
    }

    func removeDirectory() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Keeps what an agent logged, so tests can check that a failure was reported clearly (and without secrets).
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        lines.withLock { $0.append("\(event.level) \(event.message) \(fields.joined(separator: " "))") }
    }

    var all: [String] { lines.withLock { $0 } }
}

struct TestAgentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs the built `lanyard` binary, optionally under another uid with setpriv, and captures its output in files
/// (pipes could leak into other children and stall the read).
struct LanyardCLI {
    let binary: String

    /// Puts the binary into `directory`, where processes under other uids can execute it: a hard link to one
    /// world-readable copy per build, since copying the 160 MB debug binary for every test kept one of the two
    /// cooperative threads busy and starved the in-process agents of the tests running beside it.
    init(copyInto directory: String) throws {
        binary = directory + "/lanyard"
        try? FileManager.default.removeItem(atPath: binary)
        let shared = try Self.sharedCopy.get()
        if link(shared, binary) != 0 {
            try FileManager.default.copyItem(atPath: shared, toPath: binary)
        }
    }

    /// One copy of the built binary under `/tmp/lanyard-test-cli/<size>-<mtime>`, made once per test process (and
    /// reused by the next run of the same build); copies of earlier builds are removed.
    private static let sharedCopy: Result<String, any Error> = Result {
        var source = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "lanyard"
        ).path
        if !FileManager.default.fileExists(atPath: source) {
            source =
                URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                    "../../../.build/debug/lanyard"
                ).standardized.path
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: source)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let modified = Int64((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        let root = "/tmp/lanyard-test-cli"
        let build = "\(size)-\(modified)"
        let copy = "\(root)/\(build)/lanyard"
        if FileManager.default.fileExists(atPath: copy) { return copy }
        try FileManager.default.createDirectory(
            atPath: root + "/" + build,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        chmod(root, 0o755)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where old != build {
            try? FileManager.default.removeItem(atPath: root + "/" + old)
        }
        let partial = copy + ".\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.copyItem(atPath: source, toPath: partial)
        chmod(partial, 0o755)
        guard rename(partial, copy) == 0 else { throw TestAgentError("cannot place \(copy): errno \(errno)") }
        return copy
    }

    func run(
        _ arguments: [String],
        uid: UInt32? = nil,
        gid: UInt32? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        if let uid, let gid {
            return try await Self.runTool(
                ["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(gid)", "--clear-groups", binary] + arguments
            )
        }
        return try await Self.runTool([binary] + arguments)
    }

    /// Runs any program, its output and errors captured through files.
    static func runTool(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let directory = FileManager.default.temporaryDirectory.path
        let out = directory + "/lanyard-out-\(UUID().uuidString)"
        let err = directory + "/lanyard-err-\(UUID().uuidString)"
        defer {
            unlink(out)
            unlink(err)
        }
        let status = try await ChildProcess.start(arguments, outputPath: out, errorPath: err).waitUntilExit()
        return (
            status,
            String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self),
            String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self)
        )
    }
}

/// Writes a configuration file readable by its owner only, as one holding a join token must be.
func writePrivateFile(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o600)
}

/// Runs blocking work (waiting for a process, a datagram) on a GCD thread, so it never holds one of the few threads
/// of Swift's cooperative pool that in-process agents and other tests need.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// ``AdminClient`` for in-process agents: its blocking calls run on a GCD thread, never on one of the few threads of
/// Swift's cooperative pool that the agent itself needs to answer them (on two cores, two blocked calls would
/// starve the agent until the request timed out).
struct TestAdminClient: Sendable {
    let client: AdminClient

    init(socketPath: String) {
        client = AdminClient(socketPath: socketPath)
    }

    func status() async throws -> StatusReport { try await offPool { [client] in try client.status() } }

    func entries() async throws -> EntriesReport { try await offPool { [client] in try client.entries() } }

    func explain(pid: Int32) async throws -> ExplainReport {
        try await offPool { [client] in try client.explain(pid: pid) }
    }

    func explain(uid: UInt32, gid: UInt32) async throws -> ExplainReport {
        try await offPool { [client] in try client.explain(uid: uid, gid: gid) }
    }

    func logLevel(set level: String?) async throws -> (level: String, previous: String?) {
        try await offPool { [client] in try client.logLevel(set: level) }
    }
}

/// Runs `body`, failing with `what` if it takes longer than `limit`: a call without a deadline of its own (a gRPC
/// fetch) then fails its test with a reason instead of holding the suite until the time limit.
func withDeadline<T: Sendable>(
    _ limit: Duration,
    _ what: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestAgentError("\(what) took longer than \(limit)")
        }
        return value
    }
}
