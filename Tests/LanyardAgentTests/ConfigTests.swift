import Attestation
import Endpoints
import Foundation
import SPIFFE
import SPIFFECrypto
import Testing
import Upstream

@testable import LanyardAgent

@Suite("Configuration")
struct ConfigTests {
    let minimal = """
        trust_domain = "example.org"
        data_dir = "/var/lib/lanyard"
        [workload_api]
        socket_path = "/tmp/lanyard-test/api.sock"
        """

    @Test("a full file parses into typed settings with stable entry ids")
    func parsesFull() throws {
        let text =
            minimal + """

                log_level = "debug"

                [upstream]
                kind = "local"

                [upstream.local]
                ca_key_type = "ec-p384"   # comment after a value
                ca_ttl = "48h"
                x509_svid_ttl = "1h30m"
                jwt_svid_ttl = "90s"

                [attestors.unix]
                discover_workload_path = true
                workload_size_limit = 1_000_000

                [[entries]]
                spiffe_id = "spiffe://example.org/web"
                selectors = [
                    "unix:uid:1000",   # the web user
                    "unix:gid:1000",
                ]
                dns_names = ["web.local"]
                hint = "web # not a comment"

                [[entries]]
                spiffe_id = 'spiffe://example.org/db'
                selectors = ["unix:user:postgres"]
                x509_svid_ttl = "10m"
                """
        // log_level after a table header belongs to that table: it must be reported, not silently moved.
        #expect(throws: ConfigError.self) { try AgentConfig.parse(text, path: "t.toml") }
        let fixed = text.replacingOccurrences(of: "\nlog_level = \"debug\"\n", with: "\n")
        let config = try AgentConfig.parse(fixed, path: "t.toml")
        #expect(config.trustDomain.name == "example.org")
        let local = try #require(config.upstream.local)
        #expect(local.caKeyType == .ecP384)
        #expect(config.workloadAPI.callerLimits == .defaults)
        #expect(local.caTTL == .seconds(48 * 3600))
        #expect(local.x509SVIDTTL == .seconds(5400))
        #expect(local.jwtSVIDTTL == .seconds(90))
        #expect(config.unixAttestor.discoverWorkloadPath && config.unixAttestor.workloadSizeLimit == 1_000_000)
        #expect(config.entries.count == 2)
        #expect(config.entries[0].selectors.count == 2)
        #expect(config.entries[0].hint == "web # not a comment")
        #expect(config.entries[1].x509SVIDTTL == .seconds(600))
        let again = try AgentConfig.parse(fixed, path: "t.toml")
        #expect(again.entries.map(\.id) == config.entries.map(\.id))
        #expect(again.entries.map(\.revision) == config.entries.map(\.revision))
    }

    static let problems: [(String, String)] = [
        ("data_dir = \"/x\"", "trust_domain: is required"),
        ("trust_domain = \"Example.org\"", "trust_domain: trust domain must be lowercase"),
        ("trust_domain = \"example.org\"\ncolour = \"blue\"", "colour: unknown key"),
        (
            "trust_domain = \"example.org\"\n[workload_api]\nsocket_path = \"relative.sock\"",
            "workload_api.socket_path: must be an absolute path"
        ),
        (
            "trust_domain = \"example.org\"\n[workload_api]\nsocket_path = \"/\(String(repeating: "a", count: 120))\"",
            "a unix socket path holds at most 107"
        ),
        ("trust_domain = \"example.org\"\n[workload_api]\nsocket_path = \"/tmp\"", "exists and is not a socket"),
        (
            "trust_domain = \"example.org\"\n[workload_api]\nmax_calls_per_caller = -1",
            "workload_api.max_calls_per_caller: must be between 0 (no limit) and 1000000, not -1"
        ),
        (
            "trust_domain = \"example.org\"\n[workload_api]\nmax_connections_per_caller = \"many\"",
            "workload_api.max_connections_per_caller: must be an integer, not a string"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.local]\nx509_svid_ttl = \"1 hour\"",
            "upstream.local.x509_svid_ttl: \"1 hour\" is not a positive duration"
        ),
        ("trust_domain = \"example.org\"\n[upstream.local]\nca_ttl = \"0s\"", "upstream.local.ca_ttl"),
        (
            "trust_domain = \"example.org\"\n[upstream.local]\nca_key_type = \"dsa\"",
            "upstream.local.ca_key_type: must be one of"
        ),
        ("trust_domain = \"example.org\"\n[upstream]\nkind = \"spire\"", "upstream.spire.server_address: is required"),
        ("trust_domain = \"example.org\"\nlog_level = \"loud\"", "log_level: must be one of"),
        (
            "trust_domain = \"example.org\"\n[attestors.unix]\nenabled = \"yes\"",
            "attestors.unix.enabled: must be true or false"
        ),
        (
            "trust_domain = \"example.org\"\n[[entries]]\nselectors = [\"unix:uid:1\"]",
            "entries[0].spiffe_id: is required"
        ),
        (
            "trust_domain = \"example.org\"\n[[entries]]\nspiffe_id = \"spiffe://other.org/x\"\nselectors = [\"unix:uid:1\"]",
            "is not in trust domain example.org"
        ),
        (
            "trust_domain = \"example.org\"\n[[entries]]\nspiffe_id = \"spiffe://example.org/x\"\nselectors = []",
            "entries[0].selectors: needs at least one selector"
        ),
        (
            "trust_domain = \"example.org\"\n[[entries]]\nspiffe_id = \"spiffe://example.org/x\"\nselectors = [\"nocolon\"]",
            "must have the form type:value"
        ),
        (
            "trust_domain = \"example.org\"\n[[entries]]\nspiffe_id = \"spiffe://example.org/x\"\nselectors = [\"unix:uid:1\"]\nfederates_with = [\"partner.org\"]",
            "no [[federation]] bundle is configured for partner.org"
        ),
        (
            "trust_domain = \"example.org\"\n[[federation]]\ntrust_domain = \"partner.org\"\nbundle_path = \"/nonexistent/bundle.json\"",
            "federation[0].bundle_path: bundle: cannot read"
        ),
        (
            "trust_domain = \"example.org\"\ntrust_domain = \"example.com\"",
            "key trust_domain is defined twice (line 2, column 16)"
        ),
        ("trust_domain = example.org", "\"example.org\" is not a TOML value (strings need quotes) (line 1, column 16)"),
        ("trust_domain = \"example.org", "unterminated string"),
        ("[workload_api\nsocket_path = \"/a\"", "expected ']' to close the [table] header, found a newline (line 1"),
        ("[\nx", "expected a key, found a newline (line 1, column 2)"),
        ("x = { a = 1,\n b = 2 }", "the inline table x must fit on one line"),
        ("a = 1\na.b = 2", "a is already defined; a dotted key cannot add to it (line 2"),
        ("x = 0777", "is not a TOML value"),
        ("x = 1__0", "is not a TOML value"),
        ("x = 99999999999999999999", "is not a TOML value"),
        ("x = \"\\uD800\"", "not a Unicode scalar"),
        ("x = \"a\u{01}b\"", "control character"),
        ("x = 1979-02-30", "is not a TOML value"),
        ("x = { a = 1 }", "x: unknown key (line 1)"),
        ("trust_domain = \"example.org\"\nx = 1.5", "x: unknown key (line 2)"),
        ("a.b = 1", "a: unknown key (line 1)"),
        ("[a]\n[a]", "table a is defined twice (line 2"),
        ("x = [1, 2", "expected ',' or ']' in the array x, found the end of the file"),
        ("x = \"\\q\"", "unknown escape \\'q' (line 1, column 6)"),
        ("trust_domain = \"example.org\"\nlog_level = 1.5", "log_level: must be a string, not a float (line 2)"),
        ("trust_domain = \"exa\\u0000mple.org\"", "trust_domain: trust domain characters are limited to"),
        (
            "trust_domain = \"example.org\"\n[workload_api]\nconnection_idle_timeout = \"-1s\"",
            "workload_api.connection_idle_timeout: \"-1s\" is not a duration such as"
        ),
        (
            "trust_domain = \"example.org\"\njwt_svid_cache_max_size = 0",
            "jwt_svid_cache_max_size: must be between 1 and 1000000, not 0 (line 2)"
        ),
        ("trust_domain = \"example.org\"\n[sds]\nenable = true", "sds.enable: unknown key"),
        (
            "trust_domain = \"example.org\"\n[sds]\ndefault_all_bundles_name = \"ROOTCA\"",
            "sds: default_svid_name, default_bundle_name and default_all_bundles_name must differ"
        ),
        (
            "trust_domain = \"example.org\"\n[sds]\ndefault_svid_name = \"spiffe://example.org/x\"",
            "cannot be spiffe:// IDs"
        ),
        (
            "trust_domain = \"example.org\"\n[attestors.k8s]\nkubelet_secure_port = 70000",
            "attestors.k8s.kubelet_secure_port: must be a port number"
        ),
        (
            "trust_domain = \"example.org\"\n[attestors.k8s]\nmax_poll_attempts = 0",
            "attestors.k8s.max_poll_attempts: must be between 1 and 10000"
        ),
        (
            "trust_domain = \"example.org\"\n[attestors.k8s]\ntoken_path = \"token\"",
            "attestors.k8s.token_path: must be an absolute path"
        ),
        (
            "trust_domain = \"example.org\"\n[attestors.k8s]\npoll_retry_interval = \"soon\"",
            "attestors.k8s.poll_retry_interval: \"soon\" is not a positive duration"
        ),
        ("trust_domain = \"example.org\"\n[attestors.k8s]\nkubelet = 1", "attestors.k8s.kubelet: unknown key"),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\ntrust_bundle_path = \"/b.pem\"",
            "upstream.spire.server_address: is required"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\nnode_attestor = \"aws_iid\"",
            "upstream.spire.node_attestor: \"aws_iid\" is not join_token, x509pop or k8s_psat"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\n[[entries]]\nspiffe_id = \"spiffe://example.org/a\"\nselectors = [\"unix:uid:1\"]",
            "entries: come from the SPIRE Server in fleet mode"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\n[broker]\nsocket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://example.org/z\"]\nspiffe_id = \"spiffe://example.org/e\"",
            "broker.spiffe_id: the broker endpoint presents the agent SVID"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\nnode_attestor = \"k8s_psat\"",
            "upstream.spire.k8s_psat_cluster: is required"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\ninsecure_bootstrap = true",
            "upstream.spire.insecure_bootstrap: trust_bundle_path, trust_bundle_url and insecure_bootstrap: choose one"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"",
            "upstream.spire.trust_bundle_path: is required"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_url = \"http://bundles.example.org/b.pem\"",
            "upstream.spire.trust_bundle_url: must be https:// (or http:// with trust_bundle_unix_socket)"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\ntrust_bundle_format = \"der\"",
            "upstream.spire.trust_bundle_format: \"der\" is not pem or spiffe"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ninsecure_bootstrap = true\nrebootstrap_mode = \"auto\"",
            "upstream.spire.rebootstrap_mode: cannot be combined with insecure_bootstrap"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\nrebootstrap_mode = \"always\"",
            "upstream.spire.rebootstrap_mode: \"always\" needs a node attestor that can attest again"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\nrebootstrap_mode = \"sometimes\"",
            "upstream.spire.rebootstrap_mode: must be one of never, auto, always"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\ntrust_bundle_path = \"/b.pem\"\nrebootstrap_delay = \"later\"",
            "upstream.spire.rebootstrap_delay: \"later\" is not a positive duration"
        ),
        (
            "trust_domain = \"example.org\"\n[admin]\nsocket_path = \"/run/lanyard/public/admin.sock\"",
            "admin: socket_path must not be in the Workload API socket's directory"
        ),
        (
            "trust_domain = \"example.org\"\n[admin]\nsocket_path = \"admin.sock\"",
            "admin.socket_path: must be an absolute path"
        ),
        (
            "trust_domain = \"example.org\"\n[admin]\nauthorized_uids = [0, -1]",
            "admin.authorized_uids: -1 is not a uid"
        ),
        (
            "trust_domain = \"example.org\"\n[admin]\nauthorized_uids = [\"root\"]",
            "admin.authorized_uids: must be an array of integers"
        ),
        (
            "trust_domain = \"example.org\"\nx509_svid_cache_max_size = -1",
            "x509_svid_cache_max_size: must be between 0 and 1000000"
        ),
        (
            "trust_domain = \"example.org\"\n[upstream]\nkind = \"vault\"",
            "upstream.kind: \"vault\" is not an upstream"
        ),
    ]

    @Test("[upstream.spire] selects fleet mode with the server, bootstrap bundle and node attestor")
    func parsesSPIRE() throws {
        let config = try AgentConfig.parse(
            minimal + """

                [upstream.spire]
                server_address = "spire-server.spire.svc:8081"
                trust_bundle_path = "/etc/lanyard/bootstrap.pem"
                node_attestor = "x509pop"
                x509pop_certificate_path = "/etc/lanyard/node.crt"
                x509pop_private_key_path = "/etc/lanyard/node.key"
                sync_interval = "10s"
                rebootstrap_mode = "always"
                rebootstrap_delay = "2m"
                """,
            path: "t.toml"
        )
        let spire = try #require(config.spire)
        #expect(spire.rebootstrapMode == .always && spire.rebootstrapDelay == .seconds(120))
        #expect(
            try AgentConfig.parse(
                minimal + "\n[upstream.spire]\nserver_address = \"s:1\"\ntrust_bundle_path = \"/b\"",
                path: "t.toml"
            ).spire?.rebootstrapMode == .never
        )
        #expect(spire.host == "spire-server.spire.svc" && spire.port == 8081)
        #expect(
            spire.nodeAttestor
                == .x509pop(certificatePath: "/etc/lanyard/node.crt", privateKeyPath: "/etc/lanyard/node.key")
        )
        #expect(spire.syncInterval == .seconds(10))
        #expect(spire.dataDirectory == "/var/lib/lanyard/agent")
        #expect(spire.serverID.description == "spiffe://example.org/spire/server")
        #expect(try AgentConfig.parse(minimal, path: "t.toml").spire == nil)
    }

    @Test("a file holding a join token must be private; join_token_file is the alternative, and not both")
    func joinTokenFiles() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spire = """

            [upstream.spire]
            server_address = "spire-server:8081"
            trust_bundle_path = "/etc/lanyard/bootstrap.pem"
            """
        let path = directory + "/lanyard.toml"
        try Data((minimal + spire + "\njoin_token = \"secret-token\"\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        do {
            _ = try AgentConfig.load(path: path)
            Issue.record("a world-readable file with a join token was accepted")
        } catch {
            #expect(error.problems.map(\.key) == ["upstream.spire.join_token"])
            let message = error.problems.first?.message ?? ""
            #expect(
                message.contains("mode 0644") && message.contains("chmod 0600") && message.contains("join_token_file")
            )
            #expect(!"\(error)".contains("secret-token"), "the error must not repeat the token")
        }
        chmod(path, 0o640)
        #expect(throws: ConfigError.self) { try AgentConfig.load(path: path) }
        chmod(path, 0o600)
        #expect(try AgentConfig.load(path: path).spire?.nodeAttestor == .joinToken("secret-token"))
        // Without a token in it, the file may stay readable (make install installs it 0640).
        try Data((minimal + spire).utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        #expect(try AgentConfig.load(path: path).spire?.nodeAttestor == .joinToken(""))
        let withFile = try AgentConfig.parse(
            minimal + spire + "\njoin_token_file = \"/etc/lanyard/join-token\"\n",
            path: "t.toml"
        )
        #expect(withFile.spire?.nodeAttestor == .joinTokenFile("/etc/lanyard/join-token"))
        #expect(throws: ConfigError.self) {
            try AgentConfig.parse(
                minimal + spire + "\njoin_token = \"t\"\njoin_token_file = \"/etc/lanyard/join-token\"\n",
                path: "t.toml"
            )
        }
    }

    @Test("[attestors.k8s] parses into kubelet and attestor settings; node_name is the host to reach")
    func parsesK8s() throws {
        let off = try AgentConfig.parse(minimal, path: "t.toml")
        #expect(off.k8sAttestor == nil)
        let config = try AgentConfig.parse(
            minimal + """

                [attestors.k8s]
                enabled = true
                kubelet_secure_port = 11250
                node_name = "node-7.cluster.internal"
                token_path = "/run/token"
                kubelet_ca_path = "/run/ca.crt"
                max_poll_attempts = 5
                poll_retry_interval = "250ms"
                disable_container_selectors = true
                kubelet_request_timeout = "3s"
                pod_list_cache_ttl = "1s"
                """,
            path: "t.toml"
        )
        let k8s = try #require(config.k8sAttestor)
        #expect(k8s.kubelet.url == "https://node-7.cluster.internal:11250/pods")
        #expect(k8s.kubelet.tokenPath == "/run/token" && k8s.kubelet.caPath == "/run/ca.crt")
        #expect(k8s.kubelet.requestTimeout == .seconds(3))
        #expect(k8s.attestor.maximumPollAttempts == 5 && k8s.attestor.disableContainerSelectors)
        #expect(k8s.pollRetryInterval == .milliseconds(250) && k8s.podListCacheTTL == .seconds(1))
        let readOnly = try AgentConfig.parse(
            minimal + "\n[attestors.k8s]\nenabled = true\nkubelet_read_only_port = 10255\n",
            path: "t.toml"
        )
        #expect(readOnly.k8sAttestor?.kubelet.url == "http://127.0.0.1:10255/pods")
        let withCertificate = try AgentConfig.parse(
            minimal
                + "\n[attestors.k8s]\nenabled = true\ncertificate_path = \"/run/kubelet-client.crt\"\n"
                + "private_key_path = \"/run/kubelet-client.key\"\n",
            path: "t.toml"
        )
        #expect(withCertificate.k8sAttestor?.kubelet.certificatePath == "/run/kubelet-client.crt")
        #expect(withCertificate.k8sAttestor?.kubelet.privateKeyPath == "/run/kubelet-client.key")
        let anonymous = try AgentConfig.parse(
            minimal + "\n[attestors.k8s]\nenabled = true\nuse_anonymous_authentication = true\n",
            path: "t.toml"
        )
        #expect(anonymous.k8sAttestor?.kubelet.anonymous == true)
        for (text, key) in [
            ("certificate_path = \"/a.crt\"", "attestors.k8s.private_key_path"),
            ("private_key_path = \"/a.key\"", "attestors.k8s.certificate_path"),
            (
                "certificate_path = \"/a.crt\"\nprivate_key_path = \"/a.key\"\nuse_anonymous_authentication = true",
                "attestors.k8s.use_anonymous_authentication"
            ),
            ("certificate_path = \"relative.crt\"\nprivate_key_path = \"/a.key\"", "attestors.k8s.certificate_path"),
        ] {
            #expect(throws: ConfigError.self) {
                try AgentConfig.parse(minimal + "\n[attestors.k8s]\nenabled = true\n" + text + "\n", path: "t.toml")
            }
            do {
                _ = try AgentConfig.parse(minimal + "\n[attestors.k8s]\nenabled = true\n" + text + "\n", path: "t.toml")
            } catch {
                #expect(error.description.contains(key), "\(error.description)")
            }
        }
    }

    @Test("[attestors.systemd]: off by default, the bus address and timeout, a malformed address named")
    func parsesSystemd() throws {
        #expect(try AgentConfig.parse(minimal, path: "t.toml").systemdAttestor == nil)
        let plain = try AgentConfig.parse(minimal + "\n[attestors.systemd]\nenabled = true\n", path: "t.toml")
        #expect(plain.systemdAttestor?.attestor == .init())
        let custom = try AgentConfig.parse(
            minimal
                + "\n[attestors.systemd]\nenabled = true\nbus_address = \"unix:path=/run/test-bus\"\n"
                + "request_timeout = \"2s\"\n",
            path: "t.toml"
        )
        #expect(custom.systemdAttestor?.attestor.busAddress == "unix:path=/run/test-bus")
        #expect(custom.systemdAttestor?.attestor.timeout == .seconds(2))
        do {
            _ = try AgentConfig.parse(
                minimal + "\n[attestors.systemd]\nenabled = true\nbus_address = \"tcp:host=x\"\n",
                path: "t.toml"
            )
            Issue.record("a tcp bus address was accepted")
        } catch {
            #expect(error.description.contains("attestors.systemd.bus_address"), "\(error.description)")
        }
    }

    @Test("[attestors.docker]: SPIRE's keys, unix:// or plain paths, each mistake named")
    func parsesDocker() throws {
        #expect(try AgentConfig.parse(minimal, path: "t.toml").dockerAttestor == nil)
        let plain = try AgentConfig.parse(minimal + "\n[attestors.docker]\nenabled = true\n", path: "t.toml")
        #expect(plain.dockerAttestor?.attestor.dockerSocketPath == "/var/run/docker.sock")
        #expect(plain.dockerAttestor?.attestor.podmanSocketPath == nil)
        let full = try AgentConfig.parse(
            minimal + """

                [attestors.docker]
                enabled = true
                docker_socket_path = ""
                podman_socket_path = "unix:///run/podman/podman.sock"
                podman_socket_path_template = "/run/user/%d/podman/podman.sock"
                docker_version = "1.41"
                request_timeout = "2s"
                """,
            path: "t.toml"
        )
        let docker = try #require(full.dockerAttestor?.attestor)
        #expect(docker.dockerSocketPath == nil && docker.podmanSocketPath == "/run/podman/podman.sock")
        #expect(docker.podmanSocketPathTemplate == "/run/user/%d/podman/podman.sock")
        #expect(docker.apiVersion == "1.41" && docker.timeout == .seconds(2))
        for (text, key) in [
            ("docker_socket_path = \"unix://relative.sock\"", "attestors.docker.docker_socket_path"),
            ("podman_socket_path_template = \"/run/user/podman.sock\"", "attestors.docker.podman_socket_path_template"),
            ("podman_socket_path_template = \"/run/%d/%d.sock\"", "attestors.docker.podman_socket_path_template"),
            ("docker_version = \"v1.41\"", "attestors.docker.docker_version"),
            ("docker_socket_path = \"\"", "attestors.docker.enabled"),
            ("container_id_cgroup_matchers = []", "attestors.docker.container_id_cgroup_matchers: unknown key"),
        ] {
            do {
                _ = try AgentConfig.parse(
                    minimal + "\n[attestors.docker]\nenabled = true\n" + text + "\n",
                    path: "t.toml"
                )
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.description.contains(key), "\(error.description)")
            }
        }
    }

    @Test("templated entries: placeholders of enabled attestors' single-valued kinds; the rest named under their key")
    func parsesTemplates() throws {
        let k8s = "\n[attestors.k8s]\nenabled = true\n"
        let config = try AgentConfig.parse(
            "entry_template_max_instances = 500\n" + minimal + k8s + """

                [[entries]]
                spiffe_id = "spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}"
                selectors = ["k8s:pod-label:mesh:on"]
                x509_svid_ttl = "10m"
                """,
            path: "t.toml"
        )
        #expect(config.entries.isEmpty && config.entryTemplates.count == 1)
        #expect(config.entryTemplates.first?.x509SVIDTTL == .seconds(600))
        #expect(config.entryTemplateMaxInstances == 500)
        for (template, reason) in [
            ("spiffe://example.org/{k8s:pod-image}", "ambiguous: a caller can have several k8s:pod-image"),
            ("spiffe://example.org/{k8s:pod-label}", "ambiguous: a caller has one per key"),
            ("spiffe://example.org/{unix:supplementary_gid}", "ambiguous"),
            ("spiffe://example.org/{unix:path}", "characters a SPIFFE ID path cannot"),
            ("spiffe://example.org/{systemd:id}", "the systemd attestor is not enabled"),
            ("spiffe://example.org/{k8s:namespace}", "the k8s attestor has no namespace selectors"),
            ("spiffe://example.org/{aws:region}", "no attestor produces aws selectors"),
            ("spiffe://example.org/{k8s:ns:x}", "k8s:ns has no key"),
            ("spiffe://other.org/{k8s:ns}", "is not in trust domain example.org"),
            ("spiffe://example.org/{k8s:ns", "not closed"),
        ] {
            do {
                _ = try AgentConfig.parse(
                    minimal + k8s + "\n[[entries]]\nspiffe_id = \"\(template)\"\nselectors = [\"unix:uid:0\"]\n",
                    path: "t.toml"
                )
                Issue.record("accepted \(template)")
            } catch {
                #expect(error.description.contains("entries[0].spiffe_id"), "\(error.description)")
                #expect(error.description.contains(reason), "\(error.description)")
            }
        }
    }

    @Test("[broker]: off without socket_path; the endpoint ID, the authorized brokers, and each mistake named")
    func parsesBroker() throws {
        #expect(try AgentConfig.parse(minimal, path: "t.toml").broker == nil)
        let config = try AgentConfig.parse(
            minimal + "\n[broker]\nsocket_path = \"/run/lanyard/broker/broker.sock\"\n"
                + "authorized_brokers = [\"spiffe://example.org/ztunnel\"]\n",
            path: "t.toml"
        )
        let broker = try #require(config.broker)
        #expect(broker.spiffeID.description == "spiffe://example.org/lanyard/broker-endpoint")
        #expect(broker.authorizedBrokers.map(\.description) == ["spiffe://example.org/ztunnel"])
        #expect(broker.address == .unix(path: "/run/lanyard/broker/broker.sock"))
        #expect(broker.limits == .defaults)
        let bounded = try AgentConfig.parse(
            minimal + "\n[broker]\nsocket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://example.org/z\"]\n"
                + "max_connections = 8\nconnection_idle_timeout = \"30s\"\n",
            path: "t.toml"
        )
        #expect(bounded.broker?.limits.maxConnections == 8)
        #expect(bounded.broker?.limits.idleTimeout == .seconds(30))
        let tcp = try AgentConfig.parse(
            minimal + "\n[broker]\ntcp_address = \"[::1]:8443\"\nauthorized_brokers = [\"spiffe://example.org/z\"]\n",
            path: "t.toml"
        )
        #expect(tcp.broker?.address == .tcp(host: "::1", port: 8443))
        // Fleet mode: the same endpoint, presenting the agent SVID.
        let fleet = try AgentConfig.parse(
            "trust_domain = \"example.org\"\n[upstream.spire]\nserver_address = \"s:8081\"\n"
                + "trust_bundle_path = \"/b.pem\"\n[broker]\nsocket_path = \"/b.sock\"\n"
                + "authorized_brokers = [\"spiffe://example.org/z\"]\n",
            path: "t.toml"
        )
        #expect(fleet.broker?.address == .unix(path: "/b.sock"))
        for (text, reason) in [
            ("socket_path = \"/b.sock\"", "broker.authorized_brokers: the broker endpoint needs at least one"),
            ("socket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://other.org/x\"]", "not in trust domain"),
            ("socket_path = \"b.sock\"\nauthorized_brokers = [\"spiffe://example.org/x\"]", "broker.socket_path"),
            (
                "socket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://example.org/x\"]\nspiffe_id = \"spiffe://other.org/b\"",
                "broker.spiffe_id"
            ),
            ("socket_path = \"/b.sock\"\nauthorized_brokers = [\"not an id\"]", "broker.authorized_brokers"),
            (
                "tcp_address = \"broker.example:8443\"\nauthorized_brokers = [\"spiffe://example.org/x\"]",
                "broker.tcp_address"
            ),
            ("tcp_address = \"127.0.0.1:0\"\nauthorized_brokers = [\"spiffe://example.org/x\"]", "broker.tcp_address"),
            (
                "socket_path = \"/b.sock\"\ntcp_address = \"127.0.0.1:8443\"\nauthorized_brokers = [\"spiffe://example.org/x\"]",
                "not both"
            ),
            (
                "socket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://example.org/x\"]\nmax_connections = 0",
                "broker.max_connections"
            ),
            (
                "socket_path = \"/b.sock\"\nauthorized_brokers = [\"spiffe://example.org/x\"]\nconnection_idle_timeout = \"0s\"",
                "broker.connection_idle_timeout"
            ),
        ] {
            do {
                _ = try AgentConfig.parse(minimal + "\n[broker]\n" + text + "\n", path: "t.toml")
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.description.contains(reason), "\(error.description)")
            }
        }
    }

    @Test("every problem is reported under its key, with the line for syntax errors", arguments: problems)
    func reportsProblems(text: String, expected: String) {
        do {
            _ = try AgentConfig.parse(text, path: "t.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test(
        "every TOML 1.0 form a user might write loads: dotted keys, inline tables, multi-line and literal strings, hex and octal"
    )
    func toml10Forms() throws {
        let text = #"""
            trust_domain = "example.org"
            workload_api.socket_path = '/tmp/lanyard-test/api.sock'
            workload_api.max_calls_per_caller = 0o7777
            health = { listen = "" }
            jwt_svid_cache_max_size = 0x400
            upstream.local.x509_svid_ttl = "30m"

            [attestors.unix]
            workload_size_limit = 1_048_576

            [[entries]]
            spiffe_id = "spiffe://example.org/caf\u00e9-free"
            selectors = [
                "unix:uid:1000",  # a comment inside an array
            ]
            hint = """
            web"""

            [[entries]]
            spiffe_id = 'spiffe://example.org/db'
            selectors = ['unix:user:postgres']
            dns_names = [ "db.local", ]
            """#
        // The first entry's ID has é: refused, with the entry's line, by the SPIFFE ID rules (not the TOML parser).
        do {
            _ = try AgentConfig.parse(text, path: "t.toml")
            Issue.record("an ID with é was accepted")
        } catch {
            #expect(
                error.problems.map(\.description) == [
                    "entries[0].spiffe_id: path segment characters are limited to letters, numbers, dots, dashes, and underscores (line 12)"
                ]
            )
        }
        let config = try AgentConfig.parse(
            text.replacingOccurrences(of: "caf\\u00e9-free", with: "web"),
            path: "t.toml"
        )
        #expect(config.workloadAPI.socketPath == "/tmp/lanyard-test/api.sock")
        #expect(config.workloadAPI.callerLimits.maxCalls == 0o7777)
        #expect(config.health.listen == nil)
        #expect(config.jwtSVIDCacheSize == 1024)
        #expect(config.upstream.local?.x509SVIDTTL == .seconds(1800))
        #expect(config.unixAttestor.workloadSizeLimit == 1 << 20)
        #expect(config.entries.map(\.hint) == ["web", ""])
        #expect(config.entries[1].dnsNames == ["db.local"])
    }

    @Test("semantic problems carry the line of their key, also inside the second [[entries]]")
    func problemLines() {
        let text = """
            trust_domain = "example.org"

            [[entries]]
            spiffe_id = "spiffe://example.org/a"
            selectors = ["unix:uid:1"]

            [[entries]]
            spiffe_id = "spiffe://example.org/b"
            # a comment
            selectors = ["nocolon"]

            [workload_api]
            max_connections = -1
            """
        do {
            _ = try AgentConfig.parse(text, path: "t.toml")
            Issue.record("accepted")
        } catch {
            let lines = Dictionary(error.problems.map { ($0.key, $0.line) }, uniquingKeysWith: { $1 })
            #expect(lines["entries[1].selectors"] == 10)
            #expect(lines["workload_api.max_connections"] == 13)
        }
    }

    @Test("a reload compares sections: restart-only ones are named, live ones (entries, attestors, log level) are not")
    func reloadDiff() throws {
        let before = try AgentConfig.parse(
            minimal + "\n[[entries]]\nspiffe_id = \"spiffe://example.org/a\"\nselectors = [\"unix:uid:1\"]\n",
            path: "t.toml"
        )
        let after = try AgentConfig.parse(
            minimal.replacingOccurrences(of: "api.sock", with: "other.sock")
                + """

                log_level = "debug"
                [sds]
                default_svid_name = "svid"
                [upstream.local]
                x509_svid_ttl = "30m"
                [attestors.unix]
                discover_workload_path = true
                [[entries]]
                spiffe_id = "spiffe://example.org/b"
                selectors = ["unix:uid:2"]
                """.replacingOccurrences(of: "\nlog_level = \"debug\"", with: ""),
            path: "t.toml"
        )
        #expect(Reloader.restartOnlyChanges(from: before, to: after) == ["workload_api", "sds", "upstream"])
        var levelOnly = before
        levelOnly.logLevel = .debug
        levelOnly.unixAttestor.discoverWorkloadPath = true
        #expect(Reloader.restartOnlyChanges(from: before, to: levelOnly).isEmpty)
    }

    @Test("all problems of a file come back together")
    func reportsAll() {
        let text = "trust_domain = \"example.org\"\nlog_level = \"x\"\nlog_format = \"xml\"\nbogus = 1\n"
        do {
            _ = try AgentConfig.parse(text, path: "t.toml")
        } catch {
            #expect(error.problems.map(\.key).sorted() == ["bogus", "log_format", "log_level"])
        }
    }

    @Test("durations follow Go's notation")
    func durations() {
        #expect(DurationParser.parse("90s") == .seconds(90))
        #expect(DurationParser.parse("1h30m") == .seconds(5400))
        #expect(DurationParser.parse("500ms") == .milliseconds(500))
        #expect(DurationParser.parse("5") == nil)
        #expect(DurationParser.parse("5d") == nil)
        #expect(DurationParser.parse("-5s") == nil)
        #expect(DurationParser.parse("") == nil)
    }

    @Test("SPIFFE_ENDPOINT_SOCKET is read as a unix URI")
    func socketAddress() throws {
        #expect(
            try WorkloadAPIClient.resolveSocketPath(
                explicit: "/a.sock",
                environment: ["SPIFFE_ENDPOINT_SOCKET": "unix:///b"]
            ) == "/a.sock"
        )
        #expect(
            try WorkloadAPIClient.resolveSocketPath(
                explicit: nil,
                environment: ["SPIFFE_ENDPOINT_SOCKET": "unix:///run/x/api.sock"]
            ) == "/run/x/api.sock"
        )
        #expect(
            try WorkloadAPIClient.resolveSocketPath(explicit: nil, environment: [:])
                == WorkloadAPIClient.defaultSocketPath
        )
        #expect(throws: ClientError.self) {
            try WorkloadAPIClient.resolveSocketPath(
                explicit: nil,
                environment: ["SPIFFE_ENDPOINT_SOCKET": "tcp://127.0.0.1:1"]
            )
        }
        #expect(throws: ClientError.self) {
            try WorkloadAPIClient.resolveSocketPath(
                explicit: nil,
                environment: ["SPIFFE_ENDPOINT_SOCKET": "unix:///a?b=c"]
            )
        }
    }
}
