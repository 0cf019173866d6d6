import Foundation
import IdentityCache
import Logging
import Synchronization
import Upstream

/// Applies a re-read configuration: entries, federated bundles, attestor settings and the log level change live;
/// anything else (trust domain, paths, CA and SDS settings) needs a restart and is reported as such. An invalid
/// file is refused and the running configuration stays, with every problem logged.
final class Reloader: Sendable {
    let path: String
    private let running: Mutex<AgentConfig>
    /// The local CA's registrations, replaced on reload; nil in fleet mode, where entries come from the server.
    let upstream: LocalUpstream?
    let attestors: AttestorSet
    let rotator: SVIDRotator
    let logLevel: LogLevelBox?
    let notifier: SystemdNotifier
    let status: StatusReporter
    let logger: Logger

    init(
        path: String,
        running: AgentConfig,
        upstream: LocalUpstream?,
        attestors: AttestorSet,
        rotator: SVIDRotator,
        logLevel: LogLevelBox?,
        notifier: SystemdNotifier,
        status: StatusReporter,
        logger: Logger
    ) {
        self.path = path
        self.running = Mutex(running)
        self.upstream = upstream
        self.attestors = attestors
        self.rotator = rotator
        self.logLevel = logLevel
        self.notifier = notifier
        self.status = status
        self.logger = logger
    }

    func reload() async {
        notifier.reloading()
        logger.info("reloading the configuration", metadata: ["config": "\(path)"])
        let next: AgentConfig
        do {
            next = try AgentConfig.load(path: path)
        } catch {
            logger.error(
                "reload refused; the running configuration stays",
                metadata: ["problems": "\(error.problems.map(\.description).joined(separator: "; "))"]
            )
            notifier.ready(status: "reload refused (see the log); " + status.line())
            return
        }
        let previous = running.withLock { $0 }
        let needsRestart = Self.restartOnlyChanges(from: previous, to: next)
        if !needsRestart.isEmpty {
            logger.warning(
                "these settings change only on restart and keep their running values",
                metadata: ["keys": "\(needsRestart.joined(separator: ", "))"]
            )
        }
        upstream?.replace(entries: next.entries, federatedBundles: next.federatedBundles)
        attestors.replace(with: AttestorSet.attestors(for: next))
        if let level = Logger.Level(rawValue: next.logLevel) { logLevel?.current = level }
        running.withLock { $0 = next }
        let minted = await rotator.syncOnce(at: Date())
        logger.info(
            "configuration reloaded",
            metadata: ["entries": "\(rotator.cache.state.entries.count)", "svids.minted": "\(minted)"]
        )
        notifier.ready(status: status.line())
    }

    static func restartOnlyChanges(from old: AgentConfig, to new: AgentConfig) -> [String] {
        var keys: [String] = []
        if old.trustDomain != new.trustDomain { keys.append("trust_domain") }
        if old.dataDirectory != new.dataDirectory { keys.append("data_dir") }
        if old.socketPath != new.socketPath { keys.append("workload_api.socket_path") }
        if old.logFormat != new.logFormat { keys.append("log_format") }
        if old.allowUnauthenticatedVerifiers != new.allowUnauthenticatedVerifiers {
            keys.append("workload_api.allow_unauthenticated_verifiers")
        }
        if old.caKeyType != new.caKeyType || old.caTTL != new.caTTL || old.x509SVIDTTL != new.x509SVIDTTL
            || old.jwtSVIDTTL != new.jwtSVIDTTL
        {
            keys.append("upstream.local")
        }
        if old.callerLimits != new.callerLimits { keys.append("workload_api.max_*_per_caller") }
        if old.sds != new.sds { keys.append("sds") }
        if old.spire?.host != new.spire?.host || old.spire?.port != new.spire?.port
            || old.spire?.nodeAttestor != new.spire?.nodeAttestor
            || old.spire?.trustBundlePath != new.spire?.trustBundlePath
            || old.spire?.syncInterval != new.spire?.syncInterval
        {
            keys.append("upstream.spire")
        }
        if old.healthListen?.host != new.healthListen?.host || old.healthListen?.port != new.healthListen?.port {
            keys.append("health.listen")
        }
        return keys
    }
}
