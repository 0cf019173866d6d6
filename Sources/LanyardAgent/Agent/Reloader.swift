import Foundation
import IdentityCache
import Logging
import SPIFFE
import Synchronization
import Timing
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
        logger.info("reloading the configuration", metadata: [LogKey.config: "\(path)"])
        let next: AgentConfig
        do {
            next = try AgentConfig.load(path: path)
        } catch {
            logger.error(
                "reload refused; the running configuration stays",
                metadata: [LogKey.problems: "\(error.problems.map(\.description).joined(separator: "; "))"]
            )
            notifier.ready(status: "reload refused (see the log); " + status.line(status.cache.state))
            return
        }
        let previous = running.withLock { $0 }
        let needsRestart = Self.restartOnlyChanges(from: previous, to: next)
        if !needsRestart.isEmpty {
            logger.warning(
                "these settings change only on restart and keep their running values",
                metadata: [LogKey.restartKeys: "\(needsRestart.joined(separator: ", "))"]
            )
        }
        upstream?.replace(
            entries: next.entries,
            templates: next.entryTemplates,
            maximumTemplateInstances: next.entryTemplateMaxInstances,
            federatedBundles: next.federatedBundles
        )
        attestors.replace(with: AttestorSet.attestors(for: next, clock: rotator.clock))
        logLevel?.current = next.logLevel.level
        running.withLock { $0 = next }
        let minted = await rotator.requestPass()
        logger.info(
            "configuration reloaded",
            metadata: [LogKey.entries: "\(rotator.cache.state.entries.count)", LogKey.svidsMinted: "\(minted)"]
        )
        notifier.ready(status: status.line(status.cache.state))
    }

    /// The settings (as their keys or sections) that changed but apply only at the next start: everything except
    /// entries, federation bundles, the attestors and the log level, which a reload applies at once.
    static func restartOnlyChanges(from old: AgentConfig, to new: AgentConfig) -> [String] {
        var changed: [String] = []
        func compare<Value: Equatable>(_ name: String, _ value: KeyPath<AgentConfig, Value>) {
            if old[keyPath: value] != new[keyPath: value] { changed.append(name) }
        }
        compare("trust_domain", \.trustDomain)
        compare("data_dir", \.dataDirectory)
        compare("log_format", \.logFormat)
        compare("jwt_svid_cache_max_size", \.jwtSVIDCacheSize)
        compare("x509_svid_cache_max_size", \.x509SVIDCacheSize)
        compare("workload_api", \.workloadAPI)
        compare("sds", \.sds)
        compare("health", \.health)
        compare("admin", \.admin)
        compare("log_selectors", \.logSelectors)
        compare("audit", \.auditEnabled)
        compare("upstream", \.upstream)
        return changed
    }
}
