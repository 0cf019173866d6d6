public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `lanyard helper`'s configuration: spiffe-helper's key names, so an existing setup translates line by line, and a
/// few keys of its own (`file_owner`, `file_group`, `reload_cmd`, `reload_unit`, federated bundle placement). Unknown
/// keys are errors, as in the agent's configuration.
public struct HelperConfig: Sendable, Equatable {
    /// One `[[jwt_svids]]` table: a JWT-SVID for an audience, kept fresh in a file.
    public struct JWTSVIDFile: Sendable, Equatable {
        public var audience: String
        public var extraAudiences: [String]
        public var fileName: String
    }

    /// `[health_checks]`.
    public struct HealthChecks: Sendable, Equatable {
        public var enabled: Bool
        public var bindPort: Int
        public var livenessPath: String
        public var readinessPath: String
    }

    /// The Workload API socket: `agent_address`, else `SPIFFE_ENDPOINT_SOCKET`, else the agent's default.
    public var agentAddress: String
    public var certDirectory: String
    public var svidFileName: String?
    public var svidKeyFileName: String?
    public var svidBundleFileName: String?
    public var addIntermediatesToBundle: Bool
    public var includeFederatedDomains: Bool
    /// With `include_federated_domains`: every federated bundle appended to the bundle file instead of one file per
    /// trust domain under `federated_bundles_dir`.
    public var mergeFederatedBundles: Bool
    public var federatedBundlesDirectory: String
    public var omitExpired: Bool
    public var hint: String
    public var certFileMode: mode_t
    public var keyFileMode: mode_t
    public var jwtBundleFileName: String?
    public var jwtBundleFileMode: mode_t
    public var jwtSVIDFileMode: mode_t
    public var jwtSVIDs: [JWTSVIDFile]
    /// Owner and group applied to every file written (root only), by name or number.
    public var fileOwner: String?
    public var fileGroup: String?
    /// A child to start and supervise: the program and its argument vector (no shell).
    public var command: [String]?
    public var pidFileName: String?
    public var renewSignal: Int32?
    public var reloadCommand: [String]?
    public var reloadCommandTimeout: Duration
    public var reloadUnit: String?
    public var daemonMode: Bool
    /// How long `--once` (or `daemon_mode = false`) waits for the agent and an identity before it gives up.
    public var onceTimeout: Duration
    public var healthChecks: HealthChecks

    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    )
        throws(ConfigError) -> HelperConfig
    {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, problems: [.init(key: "", message: "cannot read the file")])
        }
        return try parse(bytes: Array(data), path: path, environment: environment)
    }

    public static func parse(
        _ text: String,
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> HelperConfig {
        try parse(bytes: Array(text.utf8), path: path, environment: environment)
    }

    static func parse(bytes: [UInt8], path: String, environment: [String: String]) throws(ConfigError) -> HelperConfig {
        try ConfigDocument.read(bytes: bytes, path: path) { read($0, environment: environment) }
    }

    static func read(_ root: SectionReader, environment: [String: String]) -> HelperConfig? {
        let written = root.string("agent_address").map { $0.hasPrefix("unix://") ? String($0.dropFirst(7)) : $0 }
        let agentAddress =
            (try? WorkloadAPIClient.resolveSocketPath(explicit: written, environment: environment))
            ?? WorkloadAPIClient.defaultSocketPath
        if let written, !written.hasPrefix("/") {
            root.problem("agent_address", "must be a Unix socket path (absolute, or unix:///path)")
        }
        let certDirectory = root.string("cert_dir")
        if certDirectory == nil { root.problem("cert_dir", "is required: the directory the files are written to") }
        let svid = fileName(root, "svid_file_name")
        let key = fileName(root, "svid_key_file_name")
        let bundle = fileName(root, "svid_bundle_file_name")
        if (svid == nil) != (key == nil) {
            root.problem("svid_file_name", "svid_file_name and svid_key_file_name are written together: set both")
        }
        let jwtSVIDs = root.sections("jwt_svids").compactMap { section -> JWTSVIDFile? in
            let audience = section.string("jwt_audience")
            let extra = section.strings("jwt_extra_audiences") ?? []
            let name = fileName(section, "jwt_svid_file_name")
            section.finish()
            guard let audience, !audience.isEmpty else {
                section.problem("jwt_audience", "is required and must not be empty")
                return nil
            }
            guard let name else {
                section.problem("jwt_svid_file_name", "is required")
                return nil
            }
            return JWTSVIDFile(audience: audience, extraAudiences: extra, fileName: name)
        }
        let jwtBundle = fileName(root, "jwt_bundle_file_name")
        if svid == nil && bundle == nil && jwtBundle == nil && jwtSVIDs.isEmpty {
            root.problem(
                "",
                "nothing to write: set svid_file_name and svid_key_file_name, svid_bundle_file_name, "
                    + "jwt_bundle_file_name or [[jwt_svids]]"
            )
        }
        let command = arguments(root, "cmd", "cmd_args")
        let pidFile = root.string("pid_file_name")
        if let pidFile, !pidFile.hasPrefix("/") { root.problem("pid_file_name", "must be an absolute path") }
        let signal = root.string("renew_signal").flatMap { name -> Int32? in
            guard let number = signalNumber(name) else {
                root.problem("renew_signal", "\"\(name)\" is not a signal name such as \"SIGHUP\" or \"SIGUSR1\"")
                return nil
            }
            return number
        }
        if (command != nil || pidFile != nil) && signal == nil {
            root.problem("renew_signal", "is required with cmd or pid_file_name: the signal that makes it reload")
        }
        if command != nil && pidFile != nil {
            root.problem("pid_file_name", "cannot be combined with cmd: the helper signals the child it started")
        }
        let reloadCommand = arguments(root, "reload_cmd", "reload_cmd_args")
        let reloadUnit = root.string("reload_unit")
        if let reloadUnit, reloadUnit.isEmpty || reloadUnit.contains("/") || !reloadUnit.contains(".") {
            root.problem("reload_unit", "must be a systemd unit name such as \"nginx.service\"")
        }
        let health = root.section("health_checks")
        let healthChecks = HealthChecks(
            enabled: health.bool("listener_enabled", default: false),
            bindPort: health.integer("bind_port", in: 1...65535, default: 8081),
            livenessPath: path(health, "liveness_path", default: "/live"),
            readinessPath: path(health, "readiness_path", default: "/ready")
        )
        health.finish()
        let config = HelperConfig(
            agentAddress: agentAddress,
            certDirectory: certDirectory.map { absolute($0, relativeTo: root.problems.baseDirectory) } ?? "",
            svidFileName: svid,
            svidKeyFileName: key,
            svidBundleFileName: bundle,
            addIntermediatesToBundle: root.bool("add_intermediates_to_bundle", default: false),
            includeFederatedDomains: root.bool("include_federated_domains", default: false),
            mergeFederatedBundles: root.bool("merge_federated_bundles", default: false),
            federatedBundlesDirectory: fileName(root, "federated_bundles_dir") ?? "federated",
            omitExpired: root.bool("omit_expired", default: false),
            hint: root.string("hint", default: ""),
            certFileMode: mode(root, "cert_file_mode", default: 0o644),
            keyFileMode: mode(root, "key_file_mode", default: 0o600),
            jwtBundleFileName: jwtBundle,
            jwtBundleFileMode: mode(root, "jwt_bundle_file_mode", default: 0o600),
            jwtSVIDFileMode: mode(root, "jwt_svid_file_mode", default: 0o600),
            jwtSVIDs: jwtSVIDs,
            fileOwner: root.string("file_owner"),
            fileGroup: root.string("file_group"),
            command: command,
            pidFileName: pidFile,
            renewSignal: signal,
            reloadCommand: reloadCommand,
            reloadCommandTimeout: root.duration("reload_cmd_timeout", default: .seconds(30)),
            reloadUnit: reloadUnit,
            daemonMode: root.bool("daemon_mode", default: true),
            onceTimeout: root.duration("once_timeout", default: .seconds(30)),
            healthChecks: healthChecks
        )
        if config.mergeFederatedBundles && !config.includeFederatedDomains {
            root.problem("merge_federated_bundles", "takes effect only with include_federated_domains = true")
        }
        if config.mergeFederatedBundles && bundle == nil {
            root.problem("merge_federated_bundles", "needs svid_bundle_file_name, the file they are merged into")
        }
        let names = [svid, key, bundle, jwtBundle].compactMap { $0 } + jwtSVIDs.map(\.fileName)
        if Set(names).count != names.count { root.problem("", "two files have the same name: \(names.sorted())") }
        for id in [config.fileOwner, config.fileGroup].compactMap({ $0 }) where id.isEmpty {
            root.problem(config.fileOwner == id ? "file_owner" : "file_group", "must not be empty")
        }
        root.finish()
        return certDirectory == nil ? nil : config
    }

    /// A file name inside `cert_dir`: no directories, nothing hidden, nothing the versioned layout uses.
    static func fileName(_ section: SectionReader, _ key: String) -> String? {
        guard let name = section.string(key), !name.isEmpty else { return nil }
        guard !name.contains("/"), !name.hasPrefix("."), name.utf8.count <= 255 else {
            section.problem(key, "must be a plain file name inside cert_dir (no \"/\", not starting with \".\")")
            return nil
        }
        return name
    }

    /// A file mode written as a TOML octal integer (`0o640`) or a string of octal digits (`"0640"`).
    static func mode(_ section: SectionReader, _ key: String, default value: mode_t) -> mode_t {
        guard section.has(key), let raw = section.table?[key] else { return value }
        let parsed: mode_t? =
            switch raw {
            case .integer(let number): (0...0o777).contains(number) ? mode_t(number) : nil
            case .string(let text):
                (1...4).contains(text.count) ? mode_t(text, radix: 8).flatMap { $0 <= 0o777 ? $0 : nil } : nil
            default: nil
            }
        guard let parsed else {
            section.problem(key, "must be a file mode such as 0o640 or \"0640\"")
            return value
        }
        return parsed
    }

    /// A program and its arguments: `cmd` and `cmd_args`, the arguments an array (preferred) or a string split at
    /// spaces with single and double quotes grouping, as spiffe-helper reads it. Never a shell.
    static func arguments(_ section: SectionReader, _ programKey: String, _ argumentsKey: String) -> [String]? {
        let program = section.string(programKey)
        let raw = section.has(argumentsKey) ? section.table?[argumentsKey] : nil
        var arguments: [String] = []
        switch raw {
        case nil: break
        case .string(let text)?:
            guard let split = splitArguments(text) else {
                section.problem(argumentsKey, "has an unterminated quote")
                return nil
            }
            arguments = split
        case .array?:
            arguments = section.strings(argumentsKey) ?? []
        case let other?:
            section.problem(argumentsKey, "must be an array of strings or a string, not \(other.typeName)")
        }
        guard let program, !program.isEmpty else {
            if raw != nil { section.problem(argumentsKey, "needs \(programKey)") }
            return nil
        }
        return [program] + arguments
    }

    static func splitArguments(_ text: String) -> [String]? {
        var result: [String] = []
        var current = ""
        var quote: Character? = nil
        var started = false
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                started = true
            } else if character == " " || character == "\t" || character == "\n" {
                if started { result.append(current) }
                current = ""
                started = false
            } else {
                current.append(character)
                started = true
            }
        }
        guard quote == nil else { return nil }
        if started { result.append(current) }
        return result
    }

    static func path(_ section: SectionReader, _ key: String, default value: String) -> String {
        let text = section.string(key, default: value)
        guard text.hasPrefix("/") else {
            section.problem(key, "must start with \"/\"")
            return value
        }
        return text
    }

    static func absolute(_ path: String, relativeTo base: String) -> String {
        path.hasPrefix("/") ? path : ((base.isEmpty ? FileManager.default.currentDirectoryPath : base) + "/" + path)
    }

    /// `SIGHUP`, `HUP` or a number.
    static func signalNumber(_ name: String) -> Int32? {
        let names: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "USR1": SIGUSR1, "USR2": SIGUSR2, "TERM": SIGTERM,
            "WINCH": SIGWINCH, "ALRM": SIGALRM, "CONT": SIGCONT,
        ]
        let upper = name.uppercased()
        if let number = names[upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper] { return number }
        if let number = Int32(name), number > 0, number < 65 { return number }
        return nil
    }
}
