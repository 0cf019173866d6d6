import Foundation
public import SPIFFE
public import Upstream

/// `[upstream]`: who signs. The embedded CA (standalone node), or a SPIRE Server (fleet mode).
public enum UpstreamSettings: Sendable, Equatable {
    case local(LocalAuthoritySettings)
    case spire(SPIREServerConfig)

    /// The SPIRE Server in fleet mode; nil in standalone mode.
    public var spire: SPIREServerConfig? {
        if case .spire(let config) = self { return config }
        return nil
    }

    /// The embedded CA in standalone mode; nil in fleet mode.
    public var local: LocalAuthoritySettings? {
        if case .local(let settings) = self { return settings }
        return nil
    }

    static func read(_ section: SectionReader, trustDomain: TrustDomain?, dataDirectory: String) -> UpstreamSettings? {
        let spireWritten = section.table?["spire"] != nil
        let kind = section.string("kind", default: spireWritten ? "spire" : "local")
        let local = section.section("local")
        let spire = section.section("spire")
        switch kind {
        case "local":
            if spire.isPresent { section.problem("spire", "is set but upstream.kind is \"local\"") }
            let settings = LocalAuthoritySettings.read(local)
            local.finish()
            return .local(settings)
        case "spire":
            if local.isPresent { section.problem("local", "is set but the upstream is a SPIRE Server") }
            let config = readSPIRE(spire, trustDomain: trustDomain, dataDirectory: dataDirectory)
            spire.finish()
            return config.map(UpstreamSettings.spire)
        default:
            section.problem(
                "kind",
                "\"\(kind)\" is not an upstream; use \"local\" (embedded CA) or \"spire\" (SPIRE Server)"
            )
            return nil
        }
    }

    /// `[upstream.spire]`.
    private static func readSPIRE(
        _ section: SectionReader,
        trustDomain: TrustDomain?,
        dataDirectory: String
    ) -> SPIREServerConfig? {
        var host = ""
        var port = 8081
        if let address = section.string("server_address") {
            if let parsed = HostAndPort(address), parsed.port >= 1 {
                (host, port) = (parsed.host, parsed.port)
            } else if !address.isEmpty && !address.contains(":") {
                host = address
            } else {
                section.problem("server_address", "\"\(address)\" is not host:port (such as \"spire-server:8081\")")
            }
        } else {
            section.problem("server_address", "is required")
        }
        let trustBundle = readTrustBundle(section)
        let attestorName = section.string("node_attestor", default: "join_token")
        // Every attestor's keys are read (so none is reported unknown); only the chosen one's must be right.
        let token = section.string("join_token", default: "")
        let tokenFile = section.string("join_token_file")
        let certificate = section.string("x509pop_certificate_path", default: "")
        let key = section.string("x509pop_private_key_path", default: "")
        let cluster = section.string("k8s_psat_cluster", default: "")
        let psatToken = section.string("k8s_psat_token_path", default: "/var/run/secrets/tokens/spire-agent")
        var attestor: SPIREServerConfig.NodeAttestor? = nil
        switch attestorName {
        case "join_token":
            // The token may be empty once the agent has attested: its stored identity is reused, the token spent.
            if let tokenFile {
                if !token.isEmpty {
                    section.problem("join_token_file", "cannot be set together with join_token; keep one")
                } else if !tokenFile.hasPrefix("/") {
                    section.problem("join_token_file", "must be an absolute path")
                }
                attestor = .joinTokenFile(tokenFile)
            } else {
                attestor = .joinToken(token)
            }
        case "x509pop":
            for (name, path) in [("x509pop_certificate_path", certificate), ("x509pop_private_key_path", key)]
            where !path.hasPrefix("/") {
                section.problem(name, "must be an absolute path with node_attestor = \"x509pop\"")
            }
            attestor = .x509pop(certificatePath: certificate, privateKeyPath: key)
        case "k8s_psat":
            if cluster.isEmpty { section.problem("k8s_psat_cluster", "is required with node_attestor = \"k8s_psat\"") }
            if !psatToken.hasPrefix("/") { section.problem("k8s_psat_token_path", "must be an absolute path") }
            attestor = .k8sPSAT(cluster: cluster, tokenPath: psatToken)
        default:
            section.problem("node_attestor", "\"\(attestorName)\" is not join_token, x509pop or k8s_psat")
        }
        if tokenFile != nil && attestorName != "join_token" {
            section.problem("join_token_file", "is only read with node_attestor = \"join_token\"")
        }
        let syncInterval = section.duration("sync_interval", default: .seconds(5))
        let timeout = section.duration("request_timeout", default: .seconds(10))
        let rebootstrapMode = section.choice("rebootstrap_mode", default: SPIREServerConfig.RebootstrapMode.never)
        let rebootstrapDelay = section.duration("rebootstrap_delay", default: .seconds(600))
        if rebootstrapMode != .never && trustBundle == .insecure {
            section.problem(
                "rebootstrap_mode",
                "cannot be combined with insecure_bootstrap: bootstrapping again would trust whoever answers; use trust_bundle_path or trust_bundle_url"
            )
        }
        if rebootstrapMode == .always, let attestor, !attestor.canAttestAgain {
            section.problem(
                "rebootstrap_mode",
                "\"always\" needs a node attestor that can attest again (x509pop or k8s_psat); a join token is single-use"
            )
        }
        guard let trustDomain, let attestor, trustBundle != nil else { return nil }
        return SPIREServerConfig(
            host: host,
            port: port,
            trustDomain: trustDomain,
            trustBundle: trustBundle ?? .insecure,
            nodeAttestor: attestor,
            dataDirectory: dataDirectory + "/agent",
            syncInterval: syncInterval,
            requestTimeout: timeout,
            rebootstrapMode: rebootstrapMode,
            rebootstrapDelay: rebootstrapDelay
        )
    }

    /// Exactly one bootstrap source, as SPIRE Agent allows: `trust_bundle_path`, `trust_bundle_url` (HTTPS, or HTTP
    /// over `trust_bundle_unix_socket`), or `insecure_bootstrap`; `trust_bundle_format` for the first two.
    private static func readTrustBundle(_ section: SectionReader) -> TrustBundleSource? {
        let path = section.absolutePath("trust_bundle_path", what: "the absolute path of the server's CA bundle")
        let url = section.string("trust_bundle_url")
        let socket = section.absolutePath("trust_bundle_unix_socket", what: "the absolute path of a Unix socket")
        let insecure = section.bool("insecure_bootstrap", default: false)
        let formatName = section.string("trust_bundle_format", default: "pem")
        let format = TrustBundleSource.Format(rawValue: formatName)
        if format == nil { section.problem("trust_bundle_format", "\"\(formatName)\" is not pem or spiffe") }
        let chosen = [path != nil, url != nil, insecure].filter { $0 }.count
        guard chosen == 1 else {
            section.problem(
                chosen == 0 ? "trust_bundle_path" : "insecure_bootstrap",
                chosen == 0
                    ? "is required (the server's CA bundle, e.g. from spire-server bundle show), or trust_bundle_url, or insecure_bootstrap = true"
                    : "trust_bundle_path, trust_bundle_url and insecure_bootstrap: choose one"
            )
            return nil
        }
        if socket != nil && url == nil {
            section.problem("trust_bundle_unix_socket", "is only read with trust_bundle_url")
        }
        if let url {
            let scheme = URL(string: url)?.scheme
            if socket == nil && scheme != "https" {
                section.problem("trust_bundle_url", "must be https:// (or http:// with trust_bundle_unix_socket)")
                return nil
            }
            if socket != nil && scheme != "http" {
                section.problem("trust_bundle_url", "must be http:// with trust_bundle_unix_socket")
                return nil
            }
            return format.map { .url(url, unixSocket: socket, format: $0) }
        }
        if let path { return format.map { .file(path: path, format: $0) } }
        return .insecure
    }
}
