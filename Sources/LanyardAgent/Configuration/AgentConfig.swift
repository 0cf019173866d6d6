public import Endpoints
import Foundation
public import SPIFFE
import SPIFFECrypto
public import Upstream

/// The agent's configuration, read from one TOML file and checked completely before anything starts: one
/// `Equatable` value per section, so a reload compares sections, not fields.
///
/// Keys follow SPIRE's names where SPIRE has one. Unknown keys are errors, so a typo never silently falls back to a
/// default; `config/lanyard.toml` documents every key.
public struct AgentConfig: Sendable, Equatable {
    public var trustDomain: TrustDomain
    public var dataDirectory: String
    public var logLevel: LogLevelSetting
    public var logFormat: LogFormat
    /// `jwt_svid_cache_max_size`: JWT-SVIDs kept for reuse.
    public var jwtSVIDCacheSize: Int
    /// `x509_svid_cache_max_size`: the most X509-SVIDs held; 0 mints one for every entry ahead of its first caller.
    public var x509SVIDCacheSize: Int
    public var workloadAPI: WorkloadAPISettings
    public var sds: SDSConfig
    public var health: HealthSettings
    public var admin: AdminSettings
    /// `log_selectors`: selector prefixes allowed in logs and audit records (none by default).
    public var logSelectors: [String]
    /// `[audit] enabled`: a record the first time each identity is handed to a caller on a connection.
    public var auditEnabled: Bool
    public var upstream: UpstreamSettings
    public var unixAttestor: UnixAttestorSettings
    /// `[attestors.k8s]` when enabled.
    public var k8sAttestor: K8sAttestorSettings?
    /// `[attestors.systemd]` when enabled.
    public var systemdAttestor: SystemdAttestorSettings?
    /// `[attestors.docker]` when enabled.
    public var dockerAttestor: DockerAttestorSettings?
    /// Registrations for the embedded CA (standalone mode only).
    public var entries: [RegistrationEntry]
    /// Entries whose SPIFFE ID is filled from each caller's selectors (standalone mode only).
    public var entryTemplates: [EntryTemplate]
    /// `entry_template_max_instances`: the most template instances held at once, least recently used dropped first.
    public var entryTemplateMaxInstances: Int
    public var federatedBundles: [TrustDomain: SPIFFEBundle]
    /// `[broker]`: the SPIFFE Broker Endpoint, when configured.
    public var broker: BrokerSettings?

    public static let defaultPath = "/etc/lanyard/lanyard.toml"

    /// `[upstream.spire]`: fleet mode; nil in standalone mode.
    public var spire: SPIREServerConfig? { upstream.spire }

    /// Reads and checks the file at `path`, reporting every problem at once. A file that holds a join token must be
    /// readable by its owner only.
    public static func load(path: String) throws(ConfigError) -> AgentConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, problems: [.init(key: "", message: "cannot read the file")])
        }
        let config = try parse(bytes: Array(data), path: path)
        if case .joinToken(let token)? = config.spire?.nodeAttestor, !token.isEmpty,
            let exposure = SecretFile.exposure(of: path)
        {
            throw ConfigError(
                path: path,
                problems: [
                    .init(
                        key: "upstream.spire.join_token",
                        message:
                            "\(exposure), and it holds a join token; chmod 0600 it (owned by the agent's user), or put the token in a private file named by join_token_file"
                    )
                ]
            )
        }
        return config
    }

    /// Parses configuration text; `path` names the file in messages and anchors relative `bundle_path`s.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> AgentConfig {
        try parse(bytes: Array(text.utf8), path: path)
    }

    /// Parses a configuration file's bytes (UTF-8 is checked, not assumed).
    public static func parse(bytes: [UInt8], path: String) throws(ConfigError) -> AgentConfig {
        try ConfigDocument.read(bytes: bytes, path: path, read)
    }

    /// The whole file: one read per section.
    private static func read(_ root: SectionReader) -> AgentConfig? {
        var trustDomain: TrustDomain? = nil
        if let name = root.string("trust_domain") {
            do { trustDomain = try TrustDomain(name) } catch { root.problem("trust_domain", "\(error)") }
        } else if !root.has("trust_domain") {
            root.problem("trust_domain", "is required")
        }
        let dataDirectory = root.absolutePath("data_dir", default: "/var/lib/lanyard") ?? "/var/lib/lanyard"
        let logLevel = root.choice("log_level", default: LogLevelSetting.info)
        let logFormat = root.choice("log_format", default: LogFormat.text)
        let jwtCacheSize = root.integer("jwt_svid_cache_max_size", in: 1...1_000_000, default: 1000)
        let x509CacheSize = root.integer("x509_svid_cache_max_size", in: 0...1_000_000, default: 0)
        let logSelectors = root.strings("log_selectors") ?? []
        if logSelectors.contains("") {
            root.problem("log_selectors", "an empty prefix would allow every selector; list the prefixes to log")
        }

        let workloadAPI = readSection(root, "workload_api", WorkloadAPISettings.read)
        let sds = readSection(root, "sds", SDSConfig.read)
        let health = readSection(root, "health", HealthSettings.read)
        let admin = readSection(root, "admin", AdminSettings.read)
        let auditEnabled = readSection(root, "audit") { $0.bool("enabled", default: false) }
        if let adminSocket = admin.socketPath,
            (adminSocket as NSString).deletingLastPathComponent
                == (workloadAPI.socketPath as NSString).deletingLastPathComponent
        {
            root.problem(
                "admin",
                "socket_path must not be in the Workload API socket's directory, which every local user reaches; use the agent's private runtime directory (\(AdminSettings.defaultSocketPath))"
            )
        }
        let upstreamSection = root.section("upstream")
        let upstream = UpstreamSettings.read(upstreamSection, trustDomain: trustDomain, dataDirectory: dataDirectory)
        upstreamSection.finish()
        let attestors = root.section("attestors")
        let unix = readSection(attestors, "unix", UnixAttestorSettings.read)
        let k8s = readSection(attestors, "k8s", K8sAttestorSettings.read)
        let systemd = readSection(attestors, "systemd", SystemdAttestorSettings.read)
        let docker = readSection(attestors, "docker", DockerAttestorSettings.read)
        attestors.finish()

        let brokerSection = root.section("broker")
        let broker = BrokerSettings.read(brokerSection, trustDomain: trustDomain)
        brokerSection.finish()
        let federated = FederationSettings.read(root.sections("federation"))
        var entries: [RegistrationEntry] = []
        var templates: [EntryTemplate] = []
        if let trustDomain {
            var enabled: Set<String> = []
            if unix.enabled { enabled.insert("unix") }
            if k8s != nil { enabled.insert("k8s") }
            if systemd != nil { enabled.insert("systemd") }
            if docker != nil { enabled.insert("docker") }
            (entries, templates) = EntrySettings.read(
                root.sections("entries"),
                trustDomain: trustDomain,
                federated: federated,
                enabledAttestors: enabled
            )
        }
        let templateInstances = root.integer(
            "entry_template_max_instances",
            in: 1...1_000_000,
            default: 10_000,
            describe: "must be between 1 and 1000000"
        )
        if upstream?.spire != nil {
            if root.has("entries") {
                root.problem(
                    "entries",
                    "come from the SPIRE Server in fleet mode; register them there (spire-server entry create)"
                )
            }
            if broker?.spiffeIDWritten == true {
                brokerSection.problem(
                    "spiffe_id",
                    "the broker endpoint presents the agent SVID from the SPIRE Server in fleet mode; leave it unset"
                )
            }
            if root.has("federation") {
                root.problem("federation", "bundles come from the SPIRE Server in fleet mode; federate there")
            }
        }
        root.finish()
        guard let trustDomain, let upstream else { return nil }
        return AgentConfig(
            trustDomain: trustDomain,
            dataDirectory: dataDirectory,
            logLevel: logLevel,
            logFormat: logFormat,
            jwtSVIDCacheSize: jwtCacheSize,
            x509SVIDCacheSize: x509CacheSize,
            workloadAPI: workloadAPI,
            sds: sds,
            health: health,
            admin: admin,
            logSelectors: logSelectors,
            auditEnabled: auditEnabled,
            upstream: upstream,
            unixAttestor: unix,
            k8sAttestor: k8s,
            systemdAttestor: systemd,
            dockerAttestor: docker,
            entries: entries,
            entryTemplates: templates,
            entryTemplateMaxInstances: templateInstances,
            federatedBundles: federated,
            broker: broker
        )
    }

    /// Reads the sub-table `key` of `parent` with `body`, then reports its unknown keys.
    private static func readSection<Value>(
        _ parent: SectionReader,
        _ key: String,
        _ body: (SectionReader) -> Value
    ) -> Value {
        let section = parent.section(key)
        let value = body(section)
        section.finish()
        return value
    }
}
