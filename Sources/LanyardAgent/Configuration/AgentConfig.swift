public import Attestation
public import Endpoints
import Foundation
public import SPIFFE
public import SPIFFECrypto
public import Upstream

/// The agent's configuration, read from one TOML file and checked completely before anything starts.
///
/// Keys follow SPIRE's names where SPIRE has one. Unknown keys are errors, so a typo never silently falls back to a
/// default; `config/lanyard.toml` documents every key.
public struct AgentConfig: Sendable {
    public var trustDomain: TrustDomain
    public var dataDirectory: String
    public var logLevel: String
    public var logFormat: String
    public var socketPath: String
    public var allowUnauthenticatedVerifiers: Bool
    /// `workload_api.max_connections_per_caller`, `max_calls_per_caller` and `max_connections` (0: derived from
    /// the descriptor limit at start).
    public var callerLimits: CallerLimits
    /// `workload_api.connection_idle_timeout`: a connection with no call open this long is closed; nil never.
    public var connectionIdleTimeout: Duration?
    /// `jwt_svid_cache_max_size`: JWT-SVIDs kept for reuse.
    public var jwtSVIDCacheSize: Int
    public var caKeyType: KeyType
    public var caTTL: Duration
    public var x509SVIDTTL: Duration
    public var jwtSVIDTTL: Duration
    public var unixAttestorEnabled: Bool
    public var discoverWorkloadPath: Bool
    public var workloadSizeLimit: Int64
    /// `[upstream.spire]`: fleet mode, with SPIRE Server as the upstream; nil in standalone mode (the local CA).
    public var spire: SPIREServerConfig?
    /// `[attestors.k8s]` when enabled.
    public var k8sAttestor: K8sAttestorSettings?
    public var entries: [RegistrationEntry]
    public var federatedBundles: [TrustDomain: SPIFFEBundle]
    public var sds: SDSConfig
    /// `health.listen`: host and port of `/live`, `/ready` and `/metrics`; nil when turned off (`""`).
    public var healthListen: (host: String, port: Int)?

    public static let defaultPath = "/etc/lanyard/lanyard.toml"
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// `sun_path` holds 108 bytes including the terminating NUL.
    static let maximumSocketPathLength = 107

    /// Reads and checks the file at `path`, reporting every problem at once. A file that holds a join token must be
    /// readable by its owner only.
    public static func load(path: String) throws(ConfigError) -> AgentConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, problems: [.init(key: "", message: "cannot read the file")])
        }
        let config = try parse(String(decoding: data, as: UTF8.self), path: path)
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
        let root: TOMLTable
        do {
            root = try TOMLTable.parse(text)
        } catch {
            throw ConfigError(path: path, problems: [.init(key: "", message: error.description)])
        }
        var reader = ConfigReader(baseDirectory: (path as NSString).deletingLastPathComponent)
        let config = reader.read(root)
        guard reader.problems.isEmpty, let config else {
            throw ConfigError(path: path, problems: reader.problems)
        }
        return config
    }
}

/// Walks the TOML tree, collecting problems instead of stopping at the first.
private struct ConfigReader {
    let baseDirectory: String
    var problems: [ConfigError.Problem] = []

    mutating func problem(_ key: String, _ message: String) {
        problems.append(.init(key: key, message: message))
    }

    mutating func read(_ root: TOMLTable) -> AgentConfig? {
        check(
            root,
            prefix: "",
            allowed: [
                "trust_domain", "data_dir", "log_level", "log_format", "jwt_svid_cache_max_size", "workload_api", "sds",
                "health", "upstream", "attestors", "entries", "federation",
            ]
        )
        var trustDomain: TrustDomain? = nil
        if let name = string(root, "trust_domain", prefix: "") {
            do { trustDomain = try TrustDomain(name) } catch { problem("trust_domain", "\(error)") }
        } else if root["trust_domain"] == nil {
            problem("trust_domain", "is required")
        }
        let dataDirectory = string(root, "data_dir", prefix: "") ?? "/var/lib/lanyard"
        if !dataDirectory.hasPrefix("/") { problem("data_dir", "must be an absolute path") }
        let logLevel = string(root, "log_level", prefix: "") ?? "info"
        if !AgentConfig.logLevels.contains(logLevel) {
            problem("log_level", "must be one of \(AgentConfig.logLevels.joined(separator: ", "))")
        }
        let logFormat = string(root, "log_format", prefix: "") ?? "text"
        if !["text", "json"].contains(logFormat) { problem("log_format", "must be text or json") }
        var jwtCacheSize = 1000
        if let size = integer(root, "jwt_svid_cache_max_size", prefix: "") {
            if (1...1_000_000).contains(size) {
                jwtCacheSize = Int(size)
            } else {
                problem("jwt_svid_cache_max_size", "must be between 1 and 1000000, not \(size)")
            }
        }

        let api = table(root, "workload_api", prefix: "")
        check(
            api,
            prefix: "workload_api.",
            allowed: [
                "socket_path", "allow_unauthenticated_verifiers", "max_connections_per_caller", "max_calls_per_caller",
                "max_connections", "connection_idle_timeout",
            ]
        )
        let socketPath = string(api, "socket_path", prefix: "workload_api.") ?? "/run/lanyard/public/api.sock"
        checkSocketPath(socketPath)
        let allowVerifiers = bool(api, "allow_unauthenticated_verifiers", prefix: "workload_api.") ?? false
        let callerLimits = CallerLimits(
            maxConnections: limit(api, "max_connections_per_caller", default: CallerLimits.defaults.maxConnections),
            maxCalls: limit(api, "max_calls_per_caller", default: CallerLimits.defaults.maxCalls),
            maxTotalConnections: limit(api, "max_connections", default: 0)
        )
        var idleTimeout: Duration? = .seconds(300)
        if let text = string(api, "connection_idle_timeout", prefix: "workload_api.") {
            if let parsed = DurationParser.parse(text), parsed >= .zero {
                idleTimeout = parsed == .zero ? nil : parsed
            } else {
                problem(
                    "workload_api.connection_idle_timeout",
                    "\"\(text)\" is not a duration such as \"90s\" or \"5m\" (\"0s\" keeps idle connections open)"
                )
            }
        }

        let sdsTable = table(root, "sds", prefix: "")
        let sdsPrefix = "sds."
        check(
            sdsTable,
            prefix: sdsPrefix,
            allowed: [
                "enabled", "default_svid_name", "default_bundle_name", "default_all_bundles_name",
                "disable_spiffe_cert_validation",
            ]
        )
        let sds = SDSConfig(
            isEnabled: bool(sdsTable, "enabled", prefix: sdsPrefix) ?? true,
            defaultSVIDName: string(sdsTable, "default_svid_name", prefix: sdsPrefix) ?? "default",
            defaultBundleName: string(sdsTable, "default_bundle_name", prefix: sdsPrefix) ?? "ROOTCA",
            defaultAllBundlesName: string(sdsTable, "default_all_bundles_name", prefix: sdsPrefix) ?? "ALL",
            disableSPIFFECertValidation: bool(sdsTable, "disable_spiffe_cert_validation", prefix: sdsPrefix) ?? false
        )
        let specialNames = [sds.defaultSVIDName, sds.defaultBundleName, sds.defaultAllBundlesName].filter {
            !$0.isEmpty
        }
        if Set(specialNames).count != specialNames.count {
            problem("sds", "default_svid_name, default_bundle_name and default_all_bundles_name must differ")
        }
        if specialNames.contains(where: { $0.hasPrefix(SPIFFEID.schemePrefix) }) {
            problem("sds", "special resource names cannot be spiffe:// IDs")
        }

        let health = table(root, "health", prefix: "")
        check(health, prefix: "health.", allowed: ["listen"])
        let healthText = string(health, "listen", prefix: "health.") ?? "127.0.0.1:8088"
        var healthListen: (host: String, port: Int)? = nil
        if !healthText.isEmpty {
            if let address = Self.hostAndPort(healthText) {
                healthListen = address
            } else {
                problem(
                    "health.listen",
                    "\"\(healthText)\" is not host:port (such as \"127.0.0.1:8088\"); \"\" turns it off"
                )
            }
        }

        let upstream = table(root, "upstream", prefix: "")
        check(upstream, prefix: "upstream.", allowed: ["kind", "local", "spire"])
        let kind = string(upstream, "kind", prefix: "upstream.") ?? (upstream?["spire"] != nil ? "spire" : "local")
        if !["local", "spire"].contains(kind) {
            problem(
                "upstream.kind",
                "\"\(kind)\" is not an upstream; use \"local\" (embedded CA) or \"spire\" (SPIRE Server)"
            )
        }
        if kind == "local" && upstream?["spire"] != nil {
            problem("upstream.spire", "is set but upstream.kind is \"local\"")
        }
        if kind == "spire" && upstream?["local"] != nil {
            problem("upstream.local", "is set but the upstream is a SPIRE Server")
        }
        let local = table(upstream, "local", prefix: "upstream.")
        let localPrefix = "upstream.local."
        check(local, prefix: localPrefix, allowed: ["ca_key_type", "ca_ttl", "x509_svid_ttl", "jwt_svid_ttl"])
        var caKeyType = KeyType.ecP256
        if let name = string(local, "ca_key_type", prefix: localPrefix) {
            if let type = KeyType(rawValue: name) {
                caKeyType = type
            } else {
                problem(
                    localPrefix + "ca_key_type",
                    "must be one of \(KeyType.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
        }
        let caTTL = duration(local, "ca_ttl", prefix: localPrefix) ?? .seconds(8760 * 3600)
        let x509TTL = duration(local, "x509_svid_ttl", prefix: localPrefix) ?? .seconds(3600)
        let jwtTTL = duration(local, "jwt_svid_ttl", prefix: localPrefix) ?? .seconds(300)
        if x509TTL >= caTTL { problem(localPrefix + "x509_svid_ttl", "must be shorter than ca_ttl") }

        let attestors = table(root, "attestors", prefix: "")
        check(attestors, prefix: "attestors.", allowed: ["unix", "k8s"])
        let unix = table(attestors, "unix", prefix: "attestors.")
        let unixPrefix = "attestors.unix."
        check(unix, prefix: unixPrefix, allowed: ["enabled", "discover_workload_path", "workload_size_limit"])
        let unixEnabled = bool(unix, "enabled", prefix: unixPrefix) ?? true
        let discover = bool(unix, "discover_workload_path", prefix: unixPrefix) ?? false
        let sizeLimit =
            integer(unix, "workload_size_limit", prefix: unixPrefix) ?? ExecutableHasher.Limits.defaults.sizeLimit
        if sizeLimit < 0 { problem(unixPrefix + "workload_size_limit", "cannot be negative") }
        let k8s = readK8s(table(attestors, "k8s", prefix: "attestors."))

        let federated = federation(root)
        let entries = trustDomain.map { readEntries(root, trustDomain: $0, federated: federated) } ?? []
        var spire: SPIREServerConfig? = nil
        if kind == "spire" {
            spire = readSPIRE(
                table(upstream, "spire", prefix: "upstream."),
                trustDomain: trustDomain,
                dataDirectory: dataDirectory
            )
            if root["entries"] != nil {
                problem(
                    "entries",
                    "come from the SPIRE Server in fleet mode; register them there (spire-server entry create)"
                )
            }
            if root["federation"] != nil {
                problem("federation", "bundles come from the SPIRE Server in fleet mode; federate there")
            }
        }

        guard let trustDomain, problems.isEmpty else { return nil }
        return AgentConfig(
            trustDomain: trustDomain,
            dataDirectory: dataDirectory,
            logLevel: logLevel,
            logFormat: logFormat,
            socketPath: socketPath,
            allowUnauthenticatedVerifiers: allowVerifiers,
            callerLimits: callerLimits,
            connectionIdleTimeout: idleTimeout,
            jwtSVIDCacheSize: jwtCacheSize,
            caKeyType: caKeyType,
            caTTL: caTTL,
            x509SVIDTTL: x509TTL,
            jwtSVIDTTL: jwtTTL,
            unixAttestorEnabled: unixEnabled,
            discoverWorkloadPath: discover,
            workloadSizeLimit: sizeLimit,
            spire: spire,
            k8sAttestor: k8s,
            entries: entries,
            federatedBundles: federated,
            sds: sds,
            healthListen: healthListen
        )
    }

    /// `host:port` (an IPv6 host in brackets), the port 0–65535; nil when the text is not of that form.
    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    mutating func readSPIRE(_ table: TOMLTable?, trustDomain: TrustDomain?, dataDirectory: String) -> SPIREServerConfig?
    {
        let prefix = "upstream.spire."
        check(
            table,
            prefix: prefix,
            allowed: [
                "server_address", "trust_bundle_path", "node_attestor", "join_token", "join_token_file",
                "x509pop_certificate_path",
                "x509pop_private_key_path", "k8s_psat_cluster", "k8s_psat_token_path", "sync_interval",
                "request_timeout",
            ]
        )
        var host = "", port = 8081
        if let address = string(table, "server_address", prefix: prefix) {
            if let parsed = Self.hostAndPort(address), parsed.port >= 1 {
                (host, port) = parsed
            } else if !address.isEmpty && !address.contains(":") {
                host = address
            } else {
                problem(prefix + "server_address", "\"\(address)\" is not host:port (such as \"spire-server:8081\")")
            }
        } else {
            problem(prefix + "server_address", "is required")
        }
        let bundlePath = string(table, "trust_bundle_path", prefix: prefix) ?? ""
        if !bundlePath.hasPrefix("/") {
            problem(prefix + "trust_bundle_path", "must be the absolute path of the server's PEM CA bundle")
        }
        let attestorName = string(table, "node_attestor", prefix: prefix) ?? "join_token"
        var attestor: SPIREServerConfig.NodeAttestor? = nil
        switch attestorName {
        case "join_token":
            // May be empty once the agent has attested: its stored identity is reused and the token is spent.
            let token = string(table, "join_token", prefix: prefix) ?? ""
            if let file = string(table, "join_token_file", prefix: prefix) {
                if !token.isEmpty {
                    problem(prefix + "join_token_file", "cannot be set together with join_token; keep one")
                } else if !file.hasPrefix("/") {
                    problem(prefix + "join_token_file", "must be an absolute path")
                }
                attestor = .joinTokenFile(file)
            } else {
                attestor = .joinToken(token)
            }
        case "x509pop":
            let certificate = string(table, "x509pop_certificate_path", prefix: prefix) ?? ""
            let key = string(table, "x509pop_private_key_path", prefix: prefix) ?? ""
            for (name, path) in [("x509pop_certificate_path", certificate), ("x509pop_private_key_path", key)]
            where !path.hasPrefix("/") {
                problem(prefix + name, "must be an absolute path with node_attestor = \"x509pop\"")
            }
            attestor = .x509pop(certificatePath: certificate, privateKeyPath: key)
        case "k8s_psat":
            let cluster = string(table, "k8s_psat_cluster", prefix: prefix) ?? ""
            if cluster.isEmpty { problem(prefix + "k8s_psat_cluster", "is required with node_attestor = \"k8s_psat\"") }
            let tokenPath =
                string(table, "k8s_psat_token_path", prefix: prefix) ?? "/var/run/secrets/tokens/spire-agent"
            if !tokenPath.hasPrefix("/") { problem(prefix + "k8s_psat_token_path", "must be an absolute path") }
            attestor = .k8sPSAT(cluster: cluster, tokenPath: tokenPath)
        default:
            problem(prefix + "node_attestor", "\"\(attestorName)\" is not join_token, x509pop or k8s_psat")
        }
        let syncInterval = duration(table, "sync_interval", prefix: prefix) ?? .seconds(5)
        let timeout = duration(table, "request_timeout", prefix: prefix) ?? .seconds(10)
        guard let trustDomain, let attestor else { return nil }
        return SPIREServerConfig(
            host: host,
            port: port,
            trustDomain: trustDomain,
            trustBundlePath: bundlePath,
            nodeAttestor: attestor,
            dataDirectory: dataDirectory + "/agent",
            syncInterval: syncInterval,
            requestTimeout: timeout
        )
    }

    mutating func readK8s(_ table: TOMLTable?) -> K8sAttestorSettings? {
        let prefix = "attestors.k8s."
        check(
            table,
            prefix: prefix,
            allowed: [
                "enabled", "kubelet_host", "kubelet_secure_port", "kubelet_read_only_port", "token_path",
                "kubelet_ca_path", "skip_kubelet_verification", "node_name", "max_poll_attempts", "poll_retry_interval",
                "disable_container_selectors", "kubelet_request_timeout", "pod_list_cache_ttl",
            ]
        )
        let defaults = KubeletClient.Config()
        var kubelet = defaults
        kubelet.host = string(table, "kubelet_host", prefix: prefix) ?? defaults.host
        if let nodeName = string(table, "node_name", prefix: prefix), !nodeName.isEmpty { kubelet.host = nodeName }
        if kubelet.host.isEmpty { problem(prefix + "kubelet_host", "cannot be empty") }
        for (key, keyPath) in [
            ("kubelet_secure_port", \KubeletClient.Config.securePort),
            ("kubelet_read_only_port", \KubeletClient.Config.readOnlyPort),
        ] {
            guard let port = integer(table, key, prefix: prefix) else { continue }
            if (0...65535).contains(port) {
                kubelet[keyPath: keyPath] = Int(port)
            } else {
                problem(prefix + key, "must be a port number")
            }
        }
        kubelet.tokenPath = string(table, "token_path", prefix: prefix) ?? defaults.tokenPath
        kubelet.caPath = string(table, "kubelet_ca_path", prefix: prefix) ?? defaults.caPath
        kubelet.skipVerification = bool(table, "skip_kubelet_verification", prefix: prefix) ?? false
        kubelet.requestTimeout = duration(table, "kubelet_request_timeout", prefix: prefix) ?? defaults.requestTimeout
        for (key, path) in [("token_path", kubelet.tokenPath), ("kubelet_ca_path", kubelet.caPath)]
        where !path.hasPrefix("/") {
            problem(prefix + key, "must be an absolute path")
        }
        var attestor = K8sAttestor.Config()
        let attempts = integer(table, "max_poll_attempts", prefix: prefix) ?? 60
        if (1...10_000).contains(attempts) {
            attestor.maximumPollAttempts = Int(attempts)
        } else {
            problem(prefix + "max_poll_attempts", "must be between 1 and 10000")
        }
        attestor.disableContainerSelectors = bool(table, "disable_container_selectors", prefix: prefix) ?? false
        let interval = duration(table, "poll_retry_interval", prefix: prefix) ?? .milliseconds(500)
        let cacheTTL = duration(table, "pod_list_cache_ttl", prefix: prefix) ?? .seconds(2)
        guard bool(table, "enabled", prefix: prefix) ?? false else { return nil }
        return K8sAttestorSettings(
            kubelet: kubelet,
            attestor: attestor,
            pollRetryInterval: interval,
            podListCacheTTL: cacheTTL
        )
    }

    mutating func readEntries(
        _ root: TOMLTable,
        trustDomain: TrustDomain,
        federated: [TrustDomain: SPIFFEBundle]
    ) -> [RegistrationEntry] {
        var entries: [RegistrationEntry] = []
        for (index, table) in tables(root, "entries").enumerated() {
            let prefix = "entries[\(index)]."
            check(
                table,
                prefix: prefix,
                allowed: [
                    "spiffe_id", "selectors", "x509_svid_ttl", "jwt_svid_ttl", "dns_names", "hint", "federates_with",
                ]
            )
            var spiffeID: SPIFFEID? = nil
            if let text = string(table, "spiffe_id", prefix: prefix) {
                do {
                    let id = try SPIFFEID(text)
                    if id.trustDomain != trustDomain {
                        problem(prefix + "spiffe_id", "\(id) is not in trust domain \(trustDomain)")
                    } else if id.path.isEmpty {
                        problem(prefix + "spiffe_id", "a workload identity needs a path")
                    } else {
                        spiffeID = id
                    }
                } catch {
                    problem(prefix + "spiffe_id", "\(error)")
                }
            } else if table["spiffe_id"] == nil {
                problem(prefix + "spiffe_id", "is required")
            }
            var selectors: Set<Selector> = []
            for text in strings(table, "selectors", prefix: prefix) ?? [] {
                do { selectors.insert(try Selector(text)) } catch { problem(prefix + "selectors", "\(error)") }
            }
            if selectors.isEmpty { problem(prefix + "selectors", "needs at least one selector") }
            let x509TTL = duration(table, "x509_svid_ttl", prefix: prefix)
            let jwtTTL = duration(table, "jwt_svid_ttl", prefix: prefix)
            let dnsNames = strings(table, "dns_names", prefix: prefix) ?? []
            let hint = string(table, "hint", prefix: prefix) ?? ""
            if hint.utf8.count > 1024 { problem(prefix + "hint", "is longer than 1024 bytes") }
            var federatesWith: [TrustDomain] = []
            for name in strings(table, "federates_with", prefix: prefix) ?? [] {
                do {
                    let domain = try TrustDomain(name)
                    if federated[domain] == nil {
                        problem(prefix + "federates_with", "no [[federation]] bundle is configured for \(domain)")
                    }
                    federatesWith.append(domain)
                } catch {
                    problem(prefix + "federates_with", "\(error)")
                }
            }
            guard let spiffeID else { continue }
            var entry = RegistrationEntry(
                id: "",
                spiffeID: spiffeID,
                selectors: selectors,
                x509SVIDTTL: x509TTL,
                jwtSVIDTTL: jwtTTL,
                dnsNames: dnsNames,
                hint: hint,
                federatesWith: federatesWith
            )
            entry.id = Self.entryID(entry)
            entry.revision = Self.revision(entry)
            if entries.contains(where: { $0.id == entry.id }) {
                problem(prefix + "spiffe_id", "the same identity and selectors are already in another entry")
            }
            entries.append(entry)
        }
        return entries
    }

    /// A stable ID from the identity and selectors, so an entry keeps its ID across restarts and reloads.
    static func entryID(_ entry: RegistrationEntry) -> String {
        let key =
            entry.spiffeID.description + "\n" + entry.selectors.map(\.description).sorted().joined(separator: "\n")
        return "local-" + Digest.sha256(Data(key.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Changes whenever anything in the entry changes, so the cache re-mints.
    static func revision(_ entry: RegistrationEntry) -> Int64 {
        let text = [
            entry.id, entry.dnsNames.joined(separator: ","), entry.hint,
            entry.federatesWith.map(\.name).joined(separator: ","),
            "\(String(describing: entry.x509SVIDTTL))", "\(String(describing: entry.jwtSVIDTTL))",
        ].joined(separator: "\n")
        let digest = Digest.sha256(Data(text.utf8))
        return digest.prefix(8).reduce(Int64(0)) { ($0 << 8) | Int64($1) } & Int64.max
    }

    mutating func federation(_ root: TOMLTable) -> [TrustDomain: SPIFFEBundle] {
        var bundles: [TrustDomain: SPIFFEBundle] = [:]
        for (index, table) in tables(root, "federation").enumerated() {
            let prefix = "federation[\(index)]."
            check(table, prefix: prefix, allowed: ["trust_domain", "bundle_path"])
            guard let name = string(table, "trust_domain", prefix: prefix) else {
                if table["trust_domain"] == nil { problem(prefix + "trust_domain", "is required") }
                continue
            }
            guard let trustDomain = try? TrustDomain(name) else {
                problem(prefix + "trust_domain", "\"\(name)\" is not a valid trust domain")
                continue
            }
            guard let path = string(table, "bundle_path", prefix: prefix) else {
                if table["bundle_path"] == nil { problem(prefix + "bundle_path", "is required") }
                continue
            }
            let resolved = path.hasPrefix("/") ? path : baseDirectory + "/" + path
            do {
                bundles[trustDomain] = try FederationBundleLoader.load(path: resolved, trustDomain: trustDomain)
            } catch {
                problem(prefix + "bundle_path", "\(error)")
            }
        }
        return bundles
    }

    mutating func checkSocketPath(_ path: String) {
        let key = "workload_api.socket_path"
        guard path.hasPrefix("/") else { return problem(key, "must be an absolute path") }
        guard path.utf8.count <= AgentConfig.maximumSocketPathLength else {
            return problem(
                key,
                "is \(path.utf8.count) bytes; a unix socket path holds at most \(AgentConfig.maximumSocketPathLength)"
            )
        }
        // The socket is first bound at <directory>/.lanyard-XXXXXXX/s, at most 20 bytes longer than the directory.
        let directory = (path as NSString).deletingLastPathComponent
        guard directory.utf8.count + 20 <= AgentConfig.maximumSocketPathLength else {
            let limit = AgentConfig.maximumSocketPathLength - 20
            return problem(key, "its directory is \(directory.utf8.count) bytes; at most \(limit) leaves room to bind")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            let type = (try? FileManager.default.attributesOfItem(atPath: path)[.type]) as? FileAttributeType
            if isDirectory.boolValue || (type != nil && type != .typeSocket) {
                problem(key, "\(path) exists and is not a socket")
            }
        }
    }

    // MARK: - Typed access

    mutating func check(_ table: TOMLTable?, prefix: String, allowed: Set<String>) {
        guard let table else { return }
        for key in table.keys where !allowed.contains(key) {
            problem(prefix + key, "unknown key (line \(table.line(of: key) ?? 0))")
        }
    }

    mutating func table(_ parent: TOMLTable?, _ key: String, prefix: String) -> TOMLTable? {
        switch parent?[key] {
        case nil: return nil
        case .table(let table)?: return table
        case let other?:
            problem(prefix + key, "must be a table, not \(other.typeName)")
            return nil
        }
    }

    mutating func tables(_ parent: TOMLTable, _ key: String) -> [TOMLTable] {
        switch parent[key] {
        case nil: return []
        case .tables(let tables)?: return tables
        case let other?:
            problem(key, "must be an array of tables ([[\(key)]]), not \(other.typeName)")
            return []
        }
    }

    mutating func string(_ table: TOMLTable?, _ key: String, prefix: String) -> String? {
        switch table?[key] {
        case nil: return nil
        case .string(let value)?: return value
        case let other?:
            problem(prefix + key, "must be a string, not \(other.typeName)")
            return nil
        }
    }

    mutating func bool(_ table: TOMLTable?, _ key: String, prefix: String) -> Bool? {
        switch table?[key] {
        case nil: return nil
        case .bool(let value)?: return value
        case let other?:
            problem(prefix + key, "must be true or false, not \(other.typeName)")
            return nil
        }
    }

    mutating func integer(_ table: TOMLTable?, _ key: String, prefix: String) -> Int64? {
        switch table?[key] {
        case nil: return nil
        case .integer(let value)?: return value
        case let other?:
            problem(prefix + key, "must be an integer, not \(other.typeName)")
            return nil
        }
    }

    /// A `workload_api` limit: 0 (off) up to a million.
    mutating func limit(_ table: TOMLTable?, _ key: String, default value: Int) -> Int {
        guard let configured = integer(table, key, prefix: "workload_api.") else { return value }
        guard (0...1_000_000).contains(configured) else {
            problem("workload_api." + key, "must be between 0 (no limit) and 1000000, not \(configured)")
            return value
        }
        return Int(configured)
    }

    mutating func strings(_ table: TOMLTable?, _ key: String, prefix: String) -> [String]? {
        switch table?[key] {
        case nil: return nil
        case .array(let values)?:
            var strings: [String] = []
            for value in values {
                guard case .string(let string) = value else {
                    problem(prefix + key, "must be an array of strings")
                    return nil
                }
                strings.append(string)
            }
            return strings
        case let other?:
            problem(prefix + key, "must be an array of strings, not \(other.typeName)")
            return nil
        }
    }

    mutating func duration(_ table: TOMLTable?, _ key: String, prefix: String) -> Duration? {
        guard let text = string(table, key, prefix: prefix) else { return nil }
        guard let duration = DurationParser.parse(text), duration > .zero else {
            problem(prefix + key, "\"\(text)\" is not a positive duration such as \"90s\", \"5m\" or \"1h\"")
            return nil
        }
        return duration
    }
}
