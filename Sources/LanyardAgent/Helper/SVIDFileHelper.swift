import Endpoints
public import Foundation
import GRPCCore
import LanyardProto
public import Logging
import SPIFFE
import Synchronization
import UnixSignals

/// `lanyard helper`: runs as the workload, fetches its SVIDs and bundles over the Workload API like any client, and
/// keeps them as files in `cert_dir` for software that reads a certificate, a key and a CA file from disk, telling
/// that software to reload after each renewal.
///
/// `--once` fetches everything, writes it and exits (an init container, `ExecStartPre`); the daemon follows the
/// X509-SVID and JWT bundle streams, refreshes JWT-SVIDs at half their lifetime, and tells systemd `READY=1` once
/// the first complete set is on disk.
public final class SVIDFileHelper: Sendable {
    /// The parts of a complete set; each owns its files.
    enum Part: Hashable, Sendable, CustomStringConvertible {
        case x509
        case jwtBundles
        case jwtSVID(Int)

        var description: String {
            switch self {
            case .x509: "x509-svid"
            case .jwtBundles: "jwt bundles"
            case .jwtSVID(let index): "jwt-svid \(index)"
            }
        }
    }

    let config: HelperConfig
    let logger: Logger
    let directory: CertificateDirectory
    let client: WorkloadAPIClient
    let needed: Set<Part>
    private let parts = Mutex<[Part: [CertificateDirectory.File]]>([:])
    private let reloading = Mutex<Task<Void, Never>?>(nil)
    /// The child `cmd` started, once the first complete set is written.
    private let child = Mutex<SupervisedCommand?>(nil)
    private let notifier = SystemdNotifier()

    public init(config: HelperConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        directory = CertificateDirectory(
            path: config.certDirectory,
            owner: try config.fileOwner.map(Self.userID),
            group: try config.fileGroup.map(Self.groupID)
        )
        client = WorkloadAPIClient(socketPath: config.agentAddress)
        var needed: Set<Part> = []
        if config.svidFileName != nil || config.svidBundleFileName != nil { needed.insert(.x509) }
        if config.jwtBundleFileName != nil { needed.insert(.jwtBundles) }
        for index in config.jwtSVIDs.indices { needed.insert(.jwtSVID(index)) }
        self.needed = needed
    }

    // MARK: - Once

    /// Fetches every part, retrying until `once_timeout`, writes them as one set and returns the exit status: 0, or
    /// 1 with the reason logged when the agent cannot be reached or issues no identity in time.
    public func runOnce() async -> Int32 {
        let deadline = ContinuousClock.now + config.onceTimeout
        var lastError = "nothing fetched"
        for part in needed.sorted(by: { $0.description < $1.description }) {
            while true {
                do {
                    try await store(part, try await fetch(part))
                    break
                } catch {
                    lastError = Self.describe(error)
                    guard ContinuousClock.now + .milliseconds(500) < deadline else {
                        logger.error(
                            "no complete set within once_timeout",
                            metadata: ["part": "\(part)", "timeout": "\(config.onceTimeout)", "error": "\(lastError)"]
                        )
                        return 1
                    }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        }
        do {
            try publish()
        } catch {
            logger.error("cannot write the files", metadata: ["error": "\(error)"])
            return 1
        }
        logger.info("wrote the files", metadata: ["cert_dir": "\(config.certDirectory)"])
        return 0
    }

    /// One answer for `part`: the first message of its stream, or one JWT-SVID.
    private func fetch(_ part: Part) async throws -> [CertificateDirectory.File] {
        switch part {
        case .x509:
            return try HelperFiles.x509(try await client.fetchX509SVID(), config: config, now: Date())
        case .jwtBundles:
            return [try jwtBundleFile(try await client.fetchJWTBundles())]
        case .jwtSVID(let index):
            return try await fetchJWTSVID(index).files
        }
    }

    private func fetchJWTSVID(_ index: Int) async throws -> (files: [CertificateDirectory.File], refreshAt: Date) {
        let wanted = config.jwtSVIDs[index]
        let response = try await client.fetchJWTSVID(audience: [wanted.audience] + wanted.extraAudiences)
        let svid =
            config.hint.isEmpty ? response.svids.first : response.svids.first { $0.hint == config.hint }
        guard let svid else { throw HelperError("the agent sent no JWT-SVID for audience \(wanted.audience)") }
        let refreshAt = try HelperFiles.refreshTime(of: svid.svid, receivedAt: Date())
        return ([.init(name: wanted.fileName, content: Data(svid.svid.utf8), mode: config.jwtSVIDFileMode)], refreshAt)
    }

    private func jwtBundleFile(_ response: WorkloadAPI_JWTBundlesResponse) throws -> CertificateDirectory.File {
        try HelperFiles.jwtBundles(response, name: config.jwtBundleFileName!, mode: config.jwtBundleFileMode)
    }

    // MARK: - Daemon

    /// Runs until SIGTERM or SIGINT (forwarded to the child, whose status is then the helper's), until the child
    /// exits, or until cancelled; returns the exit status. In-process callers (tests) leave the signals alone.
    public func run(handlingSignals: Bool = true) async -> Int32 {
        var health: HealthServer? = nil
        if config.healthChecks.enabled {
            health = HealthServer(
                host: "127.0.0.1",
                port: config.healthChecks.bindPort,
                probes: .init(
                    readiness: { [self] in readiness() },
                    metrics: { "" }
                ),
                logger: logger,
                livenessPath: config.healthChecks.livenessPath,
                readinessPath: config.healthChecks.readinessPath
            )
        }
        let signals = handlingSignals ? await UnixSignalsSequence(trapping: .sigterm, .sigint) : nil
        let (completeSets, completed) = AsyncStream.makeStream(of: Void.self)
        return await withTaskGroup(of: Int32?.self) { group in
            if let health {
                group.addTask {
                    try? await health.run(); return nil
                }
            }
            if needed.contains(.x509) {
                group.addTask {
                    await self.followX509SVIDs(completed); return nil
                }
            }
            if needed.contains(.jwtBundles) {
                group.addTask {
                    await self.followJWTBundles(completed); return nil
                }
            }
            for index in config.jwtSVIDs.indices {
                group.addTask {
                    await self.refreshJWTSVID(index, completed); return nil
                }
            }
            // The first complete set: READY=1, then the child starts, finding its files in place.
            group.addTask {
                for await _ in completeSets { break }
                self.notifier.ready(status: "wrote every file in \(self.config.certDirectory)")
                self.logger.info("every file is written", metadata: ["cert_dir": "\(self.config.certDirectory)"])
                guard let command = self.config.command else { return nil }
                do {
                    let started = try SupervisedCommand(arguments: command)
                    self.child.withLock { $0 = started }
                    self.logger.info("started the child", metadata: ["pid": "\(started.pid)", "cmd": "\(command[0])"])
                    // Cancelled (an in-process caller stopping the helper): the child is asked to stop too.
                    let status = await withTaskCancellationHandler {
                        await started.waitForExit()
                    } onCancel: {
                        try? started.signal(SIGTERM)
                    }
                    self.logger.info("the child exited", metadata: ["status": "\(status)"])
                    return status
                } catch {
                    self.logger.error("cannot start cmd", metadata: ["cmd": "\(command[0])", "error": "\(error)"])
                    return 1
                }
            }
            if let signals {
                group.addTask {
                    for await signal in signals {
                        let running = self.child.withLock { $0 }
                        guard let running else {
                            self.logger.info("stopping", metadata: ["signal": "\(signal)"])
                            return 0
                        }
                        // Forwarded; the child's exit ends the helper.
                        try? running.signal(signal.rawValue)
                    }
                    return 0
                }
            }
            var status: Int32 = 0
            while let result = await group.next() {
                guard let result else { continue }
                status = result
                break
            }
            self.notifier.stopping()
            group.cancelAll()
            return status
        }
    }

    /// `/ready`: every part of the set is on disk.
    func readiness() -> (ready: Bool, reason: String) {
        let missing = needed.subtracting(parts.withLock { Set($0.keys) })
        guard missing.isEmpty else {
            return (false, "not ready: waiting for " + missing.map(\.description).sorted().joined(separator: ", "))
        }
        return (true, "ready: every file is written")
    }

    /// Follows the X509-SVID stream, reconnecting with backoff; each change is written and then reloaded.
    private func followX509SVIDs(_ completed: AsyncStream<Void>.Continuation) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withClient { api in
                    try await api.fetchX509SVID(
                        WorkloadAPI_X509SVIDRequest(),
                        metadata: WorkloadAPIClient.securityMetadata
                    ) { response in
                        for try await message in response.messages {
                            let files = try HelperFiles.x509(message, config: self.config, now: Date())
                            let changed = try await self.store(.x509, files, completed: completed)
                            if changed { self.reload() }
                        }
                    }
                }
                failures = 0
            } catch  where Task.isCancelled {
                return
            } catch {
                failures += 1
                logger.warning("the x509-svid stream failed; retrying", metadata: ["error": "\(Self.describe(error))"])
            }
            try? await Task.sleep(for: Self.backoff(failures))
        }
    }

    private func followJWTBundles(_ completed: AsyncStream<Void>.Continuation) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withClient { api in
                    try await api.fetchJWTBundles(
                        WorkloadAPI_JWTBundlesRequest(),
                        metadata: WorkloadAPIClient.securityMetadata
                    ) { response in
                        for try await message in response.messages {
                            _ = try await self.store(
                                .jwtBundles,
                                [try self.jwtBundleFile(message)],
                                completed: completed
                            )
                        }
                    }
                }
                failures = 0
            } catch  where Task.isCancelled {
                return
            } catch {
                failures += 1
                logger.warning("the jwt bundle stream failed; retrying", metadata: ["error": "\(Self.describe(error))"])
            }
            try? await Task.sleep(for: Self.backoff(failures))
        }
    }

    /// Fetches one `[[jwt_svids]]` token, writes it, and fetches it again half-way through its lifetime.
    private func refreshJWTSVID(_ index: Int, _ completed: AsyncStream<Void>.Continuation) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let (files, refreshAt) = try await fetchJWTSVID(index)
                _ = try await store(.jwtSVID(index), files, completed: completed)
                failures = 0
                try? await Task.sleep(for: .seconds(max(refreshAt.timeIntervalSinceNow, 1)))
            } catch  where Task.isCancelled {
                return
            } catch {
                failures += 1
                logger.warning(
                    "cannot fetch a jwt-svid; retrying",
                    metadata: ["audience": "\(config.jwtSVIDs[index].audience)", "error": "\(Self.describe(error))"]
                )
                try? await Task.sleep(for: Self.backoff(failures))
            }
        }
    }

    // MARK: - Files and reloads

    /// Records `part`'s files; when they differ from what is on disk, publishes the whole set. Returns whether
    /// anything changed, and yields to `completed` whenever every part is present after a change.
    @discardableResult
    private func store(
        _ part: Part,
        _ files: [CertificateDirectory.File],
        completed: AsyncStream<Void>.Continuation? = nil
    ) async throws -> Bool {
        let changed = parts.withLock { parts in
            guard parts[part] != files else { return false }
            parts[part] = files
            return true
        }
        guard changed, completed != nil else { return changed }
        try publish()
        if parts.withLock({ Set($0.keys) }).isSuperset(of: needed) { completed?.yield() }
        return true
    }

    /// Writes every part's files as one new version of the directory.
    private func publish() throws {
        try parts.withLock { parts in
            try directory.publish(parts.values.flatMap { $0 }.sorted { $0.name < $1.name })
        }
        let names = parts.withLock { $0.values.flatMap { $0.map(\.name) } }.sorted()
        logger.info("published", metadata: ["cert_dir": "\(config.certDirectory)", "files": "\(names)"])
        notifier.status("wrote \(names.count) files in \(config.certDirectory)")
    }

    /// Tells the software to reload, retrying a failed action with backoff until it succeeds or a newer set
    /// supersedes it.
    private func reload() {
        let running = child.withLock { $0 }
        // A child not started yet reads the files when it starts.
        if config.command != nil && running == nil { return }
        var actions = ReloadActions(
            child: running,
            pidFile: config.pidFileName.map { PIDFileSignal(path: $0, signal: config.renewSignal ?? SIGHUP) },
            signal: config.renewSignal,
            reloadCommand: config.reloadCommand,
            reloadCommandTimeout: config.reloadCommandTimeout,
            reloadUnit: config.reloadUnit,
            logger: logger
        )
        guard !actions.isEmpty else { return }
        let logger = self.logger
        let task = Task {
            for attempt in 1...6 {
                let (failures, failed) = await actions.perform()
                guard !failures.isEmpty, !Task.isCancelled else { return }
                for failure in failures {
                    logger.warning("reload failed", metadata: ["attempt": "\(attempt)", "error": "\(failure)"])
                }
                actions = failed
                try? await Task.sleep(for: Self.backoff(attempt))
            }
            logger.error("gave up on this reload after 6 attempts; the next renewal tries again")
        }
        reloading.withLock { previous in
            previous?.cancel()
            previous = task
        }
    }

    static func backoff(_ failures: Int) -> Duration {
        .milliseconds(min(500 * (1 << min(failures, 6)), 30_000))
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? RPCError { return "\(error.code): \(error.message)" }
        return "\(error)"
    }

    static func userID(_ name: String) throws -> uid_t {
        if let number = uid_t(name) { return number }
        guard let entry = getpwnam(name) else { throw HelperError("file_owner: no user \"\(name)\"") }
        return entry.pointee.pw_uid
    }

    static func groupID(_ name: String) throws -> gid_t {
        if let number = gid_t(name) { return number }
        guard let entry = getgrnam(name) else { throw HelperError("file_group: no group \"\(name)\"") }
        return entry.pointee.gr_gid
    }
}
