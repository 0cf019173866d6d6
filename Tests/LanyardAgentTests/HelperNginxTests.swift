import Foundation
import LanyardTestSupport
import Testing

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

/// nginx from Debian serving HTTPS with the helper's files: after a renewal the helper reloads it (SIGHUP through
/// nginx's PID file, then `reload_cmd`) and an OpenSSL client sees the new certificate.
@Suite("lanyard helper feeding nginx", .serialized, .timeLimit(.minutes(5)))
struct HelperNginxTests {
    static let nginx = "/usr/sbin/nginx"

    func canRun() -> Bool {
        guard getuid() == 0 else {
            print("skipped: the nginx test needs root (an entry for uid 0)")
            return false
        }
        guard FileManager.default.isExecutableFile(atPath: Self.nginx) else {
            print("skipped: nginx is not installed (make deps installs it)")
            return false
        }
        return true
    }

    /// The serial of the certificate nginx presents.
    static func servedSerial(port: Int) async throws -> String? {
        let output = try await ChildProcess.run(
            [
                "/bin/sh", "-c",
                "openssl s_client -connect 127.0.0.1:\(port) </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ],
            discardingErrors: true
        ).output
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("serial=") }) else { return nil }
        return line.dropFirst("serial=".count).lowercased()
    }

    static func normalized(_ serial: String) -> String {
        String(serial.lowercased().drop { $0 == "0" })
    }

    @Test("nginx reloads on SIGHUP through its PID file, then through reload_cmd, and serves each new certificate")
    func reloadsNginx() async throws {
        guard canRun() else { return }
        let clock = ManualClock()
        let agent = try await TestAgent.start(HelperTests.rootEntry, x509SVIDTTL: "30s", clock: clock)
        defer { agent.removeDirectory() }
        let directory = agent.directory
        let certs = directory + "/certs"
        let cli = try LanyardCLI(copyInto: directory)
        let port = Int.random(in: 50_001...60_000)
        try FileManager.default.createDirectory(atPath: directory + "/nginx-tmp", withIntermediateDirectories: true)
        let nginxConfig = directory + "/nginx.conf"
        try """
        pid \(directory)/nginx.pid;
        error_log \(directory)/nginx-error.log;
        worker_processes 1;
        events {}
        http {
            access_log off;
            client_body_temp_path \(directory)/nginx-tmp/body;
            proxy_temp_path \(directory)/nginx-tmp/proxy;
            fastcgi_temp_path \(directory)/nginx-tmp/fastcgi;
            uwsgi_temp_path \(directory)/nginx-tmp/uwsgi;
            scgi_temp_path \(directory)/nginx-tmp/scgi;
            server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(certs)/svid.pem;
                ssl_certificate_key \(certs)/svid_key.pem;
                location / { return 200 "ok\\n"; }
            }
        }
        """.write(toFile: nginxConfig, atomically: true, encoding: .utf8)
        // The files first (as ExecStartPre would), then nginx, then the helper following renewals.
        let signalled = try HelperProcessTests.writeConfig(
            agent,
            certs: certs,
            "pid_file_name = \"\(directory)/nginx.pid\"\nrenew_signal = \"SIGHUP\""
        )
        #expect(try await cli.run(["helper", "run", "--config", signalled, "--once"]).status == 0)
        let server = try await ChildProcess.start(
            [Self.nginx, "-c", nginxConfig, "-g", "daemon off;"],
            errorPath: directory + "/nginx.out"
        )
        defer { server.stop(SIGQUIT) }
        let first = try HelperTests.matchingSerial(certs)
        #expect(try await Self.eventuallyServes(first, port: port), "nginx did not serve the helper's certificate")

        let helper = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", signalled],
            errorPath: directory + "/helper.log"
        )
        try await Task.sleep(for: .milliseconds(500))
        let second = try await HelperProcessTests.rotate(clock, certs: certs)
        #expect(second != first)
        #expect(try await Self.eventuallyServes(second, port: port), "nginx kept the old certificate after SIGHUP")
        helper.stop(SIGTERM)
        _ = await helper.waitUntilExit()

        let commanded = try HelperProcessTests.writeConfig(
            agent,
            certs: certs,
            "reload_cmd = \"\(Self.nginx)\"\nreload_cmd_args = [\"-c\", \"\(nginxConfig)\", \"-s\", \"reload\"]"
        )
        let viaCommand = try await ChildProcess.start(
            [cli.binary, "helper", "run", "--config", commanded],
            errorPath: directory + "/helper2.log"
        )
        defer { viaCommand.stop(SIGTERM) }
        try await Task.sleep(for: .milliseconds(500))
        let third = try await HelperProcessTests.rotate(clock, certs: certs)
        #expect(try await Self.eventuallyServes(third, port: port))
        #expect(HelperTests.read(directory + "/helper2.log")?.contains("reload_cmd succeeded") == true)
        await agent.stop()
    }

    static func eventuallyServes(_ serial: String, port: Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let served = try await servedSerial(port: port), normalized(served) == normalized(serial) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
