import CLinux
package import Glibc
import Subprocess
import Synchronization
import SystemPackage

/// A child process for tests and the bench, on swift-subprocess: standard input from nothing, output and errors
/// appended to files (or discarded), every other descriptor closed and default signal handling in the child, and its
/// exit learnt from a pidfd.
///
/// Nothing is shared with other children. Foundation's `Process` learns that a child exited when a socket shared with
/// it closes; children that other tests start at the same moment can inherit that socket, and then `waitUntilExit`
/// spins until the inheritor exits (the suite hung twice that way). Signals go through a pidfd of our own, so they
/// never reach a process that inherited a recycled PID.
package final class ChildProcess: Sendable {
    package let pid: Int32
    /// A duplicate of Subprocess's pidfd, which it closes once the child is reaped.
    private let processDescriptor: Int32
    private let exit: Task<Int32, Never>
    private let exitCode: ExitCode

    private init(pid: Int32, processDescriptor: Int32, exit: Task<Int32, Never>, exitCode: ExitCode) {
        self.pid = pid
        self.processDescriptor = processDescriptor
        self.exit = exit
        self.exitCode = exitCode
    }

    deinit {
        if processDescriptor >= 0 { close(processDescriptor) }
    }

    /// Starts `arguments[0]` (a path) with the rest as arguments, in `directory` if given. Output appends to
    /// `outputPath` (or is discarded), and errors to `errorPath` (or the same place); both files are created 0600.
    package static func start(
        _ arguments: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        outputPath: String? = nil,
        errorPath: String? = nil
    ) async throws -> ChildProcess {
        let configuration = try Self.configuration(arguments, environment: environment, directory: directory)
        let output = try Self.appending(to: outputPath)
        let error: FileDescriptor
        do {
            error = try Self.appending(to: errorPath ?? outputPath)
        } catch {
            try? output.close()
            throw error
        }
        let exitCode = ExitCode()
        let launch = Handshake()
        let exit = Task { () -> Int32 in
            do {
                let result = try await Subprocess.run(
                    configuration,
                    input: .none,
                    output: .fileDescriptor(output, closeAfterSpawningProcess: true),
                    error: .fileDescriptor(error, closeAfterSpawningProcess: true)
                ) { execution in
                    let identifier = execution.processIdentifier
                    launch.succeed(pid: identifier.value, processDescriptor: dup(identifier.processDescriptor))
                }
                let code = Self.code(result.terminationStatus)
                exitCode.set(code)
                return code
            } catch {
                launch.fail(error)
                exitCode.set(-1)
                return -1
            }
        }
        let (pid, processDescriptor) = try await launch.value()
        return ChildProcess(pid: pid, processDescriptor: processDescriptor, exit: exit, exitCode: exitCode)
    }

    /// What ``run(_:environment:directory:limit:)`` saw: the exit code and the output and errors together.
    package struct Outcome: Sendable {
        package let status: Int32
        package let bytes: [UInt8]
        package var output: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// Runs `arguments` to completion and returns its exit code and its output and errors together, as a shell's
    /// `2>&1` would (or its output alone, errors discarded, when output is data to parse). More than `limit` bytes
    /// is an error.
    package static func run(
        _ arguments: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        discardingErrors: Bool = false,
        limit: Int = 64 << 20
    ) async throws -> Outcome {
        let configuration = try configuration(arguments, environment: environment, directory: directory)
        if discardingErrors {
            let result = try await Subprocess.run(
                configuration,
                input: .none,
                output: .bytes(limit: limit),
                error: .discarded
            )
            return Outcome(status: code(result.terminationStatus), bytes: result.standardOutput)
        }
        let result = try await Subprocess.run(
            configuration,
            input: .none,
            output: .bytes(limit: limit),
            error: .combinedWithOutput
        )
        return Outcome(status: code(result.terminationStatus), bytes: result.standardOutput)
    }

    package var isRunning: Bool { exitCode.value == nil }

    /// The exit code, or 128 + the signal for a child killed by one (as a shell reports it); nil while it runs.
    package var terminationStatus: Int32? { exitCode.value }

    /// Waits until the child has exited and been reaped; returns ``terminationStatus``.
    @discardableResult
    package func waitUntilExit() async -> Int32 { await exit.value }

    /// Waits up to `timeout` for the child to exit; its status, or nil if it still runs.
    package func waitUntilExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return terminationStatus
    }

    /// Sends `signal` through the pidfd (by PID only where the kernel gave none); nothing once the child has exited.
    package func signal(_ signal: Int32) {
        guard isRunning else { return }
        if processDescriptor >= 0 {
            _ = lanyard_pidfd_send_signal(processDescriptor, signal)
        } else {
            Glibc.kill(pid, signal)
        }
    }

    /// Sends `signal` and blocks the calling thread until the kernel reports the child dead; after `grace`, SIGKILL.
    /// For `defer` blocks, which cannot wait asynchronously; reaping follows on its own.
    package func stop(_ signal: Int32 = SIGKILL, grace: Duration = .seconds(5)) {
        guard isRunning, processDescriptor >= 0 else {
            self.signal(SIGKILL)
            return
        }
        self.signal(signal)
        let graceMilliseconds = Int32(clamping: grace.components.seconds * 1000)
        if lanyard_pidfd_wait_exited(processDescriptor, graceMilliseconds) == 1 { return }
        self.signal(SIGKILL)
        _ = lanyard_pidfd_wait_exited(processDescriptor, 5000)
    }

    private static func configuration(
        _ arguments: [String],
        environment: [String: String]?,
        directory: String?
    ) throws -> Configuration {
        guard let executable = arguments.first else { throw ChildProcessError("no program to run") }
        let variables = environment.map { variables in
            Environment.custom(
                Dictionary(
                    uniqueKeysWithValues: variables.compactMap { name, value in
                        Environment.Key(rawValue: name).map { ($0, value) }
                    }
                )
            )
        }
        return Configuration(
            executable: .path(FilePath(executable)),
            arguments: Arguments(Array(arguments.dropFirst())),
            environment: variables ?? .inherit,
            workingDirectory: directory.map { FilePath($0) }
        )
    }

    /// A descriptor appending to `path` (created 0600), or /dev/null.
    private static func appending(to path: String?) throws -> FileDescriptor {
        guard let path else { return try FileDescriptor.open("/dev/null", .writeOnly) }
        return try FileDescriptor.open(
            FilePath(path),
            .writeOnly,
            options: [.create, .append],
            permissions: [.ownerReadWrite]
        )
    }

    private static func code(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// The exit code once the child has been reaped.
private final class ExitCode: Sendable {
    private let code = Mutex<Int32?>(nil)
    var value: Int32? { code.withLock { $0 } }
    func set(_ value: Int32) { code.withLock { $0 = value } }
}

/// The spawn's outcome, handed from the task that runs the child to the caller of ``ChildProcess/start``.
private final class Handshake: Sendable {
    private struct State {
        var outcome: Result<(Int32, Int32), any Error>?
        var waiter: CheckedContinuation<(Int32, Int32), any Error>?
    }

    private let state = Mutex(State())

    func succeed(pid: Int32, processDescriptor: Int32) { finish(.success((pid, processDescriptor))) }

    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ outcome: Result<(Int32, Int32), any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<(Int32, Int32), any Error>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: outcome)
    }

    func value() async throws -> (Int32, Int32) {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state in
                if state.outcome == nil { state.waiter = continuation }
                return state.outcome
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
