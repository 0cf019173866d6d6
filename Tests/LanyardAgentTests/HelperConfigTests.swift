import Foundation
import Testing

@testable import LanyardAgent

@Suite("lanyard helper: configuration")
struct HelperConfigTests {
    func parse(_ text: String, environment: [String: String] = [:]) throws -> HelperConfig {
        try HelperConfig.parse(text, path: "/etc/lanyard/helper/web.toml", environment: environment)
    }

    func problems(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch let error as ConfigError {
            return error.problems.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test("spiffe-helper's keys translate line by line; modes as integers or strings; cmd_args as a string or array")
    func spiffeHelperKeys() throws {
        let config = try parse(
            """
            agent_address = "/run/lanyard/public/api.sock"
            cert_dir = "certs"
            svid_file_name = "svid.pem"
            svid_key_file_name = "svid_key.pem"
            svid_bundle_file_name = "svid_bundle.pem"
            add_intermediates_to_bundle = true
            include_federated_domains = true
            omit_expired = true
            hint = "web"
            cert_file_mode = 0o644
            key_file_mode = "0640"
            jwt_bundle_file_name = "bundle.json"
            jwt_bundle_file_mode = 0o444
            jwt_svid_file_mode = "0400"
            jwt_svids = [{jwt_audience = "payments", jwt_extra_audiences = ["audit"], jwt_svid_file_name = "jwt.token"}]
            cmd = "ghostunnel"
            cmd_args = "server --listen 'localhost:8002' --keystore \\"certs/svid key.pem\\""
            renew_signal = "SIGUSR1"
            daemon_mode = true

            [health_checks]
            listener_enabled = true
            bind_port = 8081
            liveness_path = "/live"
            readiness_path = "/readu"
            """
        )
        #expect(config.certDirectory == "/etc/lanyard/helper/certs")
        #expect(config.keyFileMode == 0o640 && config.certFileMode == 0o644 && config.jwtSVIDFileMode == 0o400)
        #expect(config.jwtBundleFileMode == 0o444)
        #expect(config.jwtSVIDs == [.init(audience: "payments", extraAudiences: ["audit"], fileName: "jwt.token")])
        #expect(
            config.command == [
                "ghostunnel", "server", "--listen", "localhost:8002", "--keystore", "certs/svid key.pem",
            ]
        )
        #expect(config.renewSignal == SIGUSR1)
        #expect(
            config.healthChecks == .init(enabled: true, bindPort: 8081, livenessPath: "/live", readinessPath: "/readu")
        )
        #expect(config.hint == "web" && config.addIntermediatesToBundle && config.omitExpired)
        let array = try parse(
            """
            cert_dir = "/certs"
            svid_bundle_file_name = "ca.pem"
            cmd = "/usr/sbin/nginx"
            cmd_args = ["-g", "daemon off;"]
            renew_signal = "HUP"
            """
        )
        #expect(array.command == ["/usr/sbin/nginx", "-g", "daemon off;"])
        #expect(array.renewSignal == SIGHUP)
    }

    @Test("config/helper.toml, the documented reference, is valid")
    func referenceFile() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/helper.toml").standardized.path
        let config = try HelperConfig.load(path: path, environment: [:])
        #expect(config.certDirectory == "/var/lib/lanyard-helper/nginx")
        #expect(config.pidFileName == "/run/nginx.pid" && config.renewSignal == SIGHUP)
        #expect(config.keyFileMode == 0o600 && config.daemonMode)
    }

    @Test("the socket comes from agent_address, else SPIFFE_ENDPOINT_SOCKET, else the default")
    func agentAddress() throws {
        let minimal = "cert_dir = \"/c\"\nsvid_bundle_file_name = \"ca.pem\"\n"
        #expect(try parse(minimal).agentAddress == "/run/lanyard/public/api.sock")
        #expect(
            try parse(minimal, environment: ["SPIFFE_ENDPOINT_SOCKET": "unix:///tmp/agent.sock"]).agentAddress
                == "/tmp/agent.sock"
        )
        #expect(
            try parse(
                "agent_address = \"unix:///a/b.sock\"\n" + minimal,
                environment: ["SPIFFE_ENDPOINT_SOCKET": "unix:///x"]
            )
            .agentAddress == "/a/b.sock"
        )
    }

    @Test("unknown keys, bad modes, names with paths, missing partners and conflicts are each reported")
    func errors() {
        let base = "cert_dir = \"/c\"\nsvid_file_name = \"a.pem\"\nsvid_key_file_name = \"k.pem\"\n"
        #expect(problems(base + "svid_file_mode = 0o600\n").contains { $0.contains("svid_file_mode: unknown key") })
        #expect(
            problems(base + "cert_file_mode = 644\n").contains { $0.contains("cert_file_mode: must be a file mode") }
        )
        #expect(problems(base + "key_file_mode = \"0999\"\n").contains { $0.contains("key_file_mode") })
        #expect(problems(base + "svid_bundle_file_name = \"../ca.pem\"\n").contains { $0.contains("plain file name") })
        #expect(
            problems("cert_dir = \"/c\"\nsvid_file_name = \"a.pem\"\n").contains { $0.contains("svid_key_file_name") }
        )
        #expect(problems(base + "cmd = \"/bin/true\"\n").contains { $0.contains("renew_signal: is required") })
        #expect(problems(base + "renew_signal = \"SIGFOO\"\n").contains { $0.contains("not a signal name") })
        #expect(
            problems(base + "cmd = \"/bin/true\"\npid_file_name = \"/run/x.pid\"\nrenew_signal = \"HUP\"\n")
                .contains { $0.contains("cannot be combined with cmd") }
        )
        #expect(
            problems(base + "cmd_args = \"'unterminated\"\ncmd = \"x\"\nrenew_signal = \"HUP\"\n").contains {
                $0.contains("unterminated quote")
            }
        )
        #expect(problems("cert_dir = \"/c\"\n").contains { $0.contains("nothing to write") })
        #expect(problems("svid_bundle_file_name = \"ca.pem\"\n").contains { $0.contains("cert_dir: is required") })
        #expect(problems(base + "svid_bundle_file_name = \"a.pem\"\n").contains { $0.contains("same name") })
        #expect(problems(base + "reload_unit = \"nginx\"\n").contains { $0.contains("reload_unit") })
        #expect(problems(base + "[[jwt_svids]]\njwt_svid_file_name = \"t\"\n").contains { $0.contains("jwt_audience") })
        #expect(problems(base + "[health_checks]\nbind_port = 70000\n").contains { $0.contains("bind_port") })
        #expect(problems(base + "merge_federated_bundles = true\n").contains { $0.contains("merge_federated_bundles") })
    }
}
