import ArgumentParser
import Foundation
import LanyardTestSupport

/// Runs the fake kubelet next to an agent, for development and demos; see the README's "Kubernetes" section.
@main
struct FakeKubeletCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lanyard-fake-kubelet",
        abstract: "Serve a kubelet-like GET /pods over HTTPS (or HTTP) for trying and testing Lanyard's k8s attestor."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (10250 is the kubelet's secure port).") var port = 10250
    @Flag(help: "Serve plain HTTP without a token, like the kubelet's read-only port.") var readOnly = false
    @Option(help: "Bearer token clients must present (ignored with --read-only).") var token = "fake-kubelet-token"
    @Option(help: "Write the bearer token to this file, for the agent's token_path.") var writeToken: String?
    @Option(help: "Write the CA certificate to this file, for the agent's kubelet_ca_path.") var writeCA: String?
    @Option(help: "Serve this PodList JSON file (re-read on SIGHUP is not supported; restart to change it).")
    var pods: String?
    @Option(help: "Serve this many generated pods of realistic size instead.") var generate = 0
    @Option(help: "Misbehave: 500 (or any status), slow:<seconds>, hang, truncated, oversized:<bytes>.")
    var fail: String?

    func run() async throws {
        let kubelet = try await FakeKubelet.start(
            host: host,
            port: port,
            tls: !readOnly,
            token: readOnly ? nil : token,
            pods: FakePod.generated(count: generate)
        )
        if let pods {
            guard let data = FileManager.default.contents(atPath: pods) else {
                throw ValidationError("cannot read \(pods)")
            }
            kubelet.setPodListJSON(data)
        }
        if let fail { kubelet.setBehaviour(try Self.behaviour(fail)) }
        if let writeCA { try Data(kubelet.caPEM.utf8).write(to: URL(fileURLWithPath: writeCA), options: .atomic) }
        if let writeToken { try Data(token.utf8).write(to: URL(fileURLWithPath: writeToken), options: .atomic) }
        let scheme = readOnly ? "http" : "https"
        print("fake kubelet serving \(scheme)://\(host):\(kubelet.port)/pods")
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    static func behaviour(_ text: String) throws -> FakeKubelet.Behaviour {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first, parts.count > 1 ? parts[1] : nil) {
        case ("hang", nil): return .hang
        case ("truncated", nil): return .truncated
        case ("slow", let seconds?): if let value = Double(seconds) { return .slow(.milliseconds(Int(value * 1000))) }
        case ("oversized", let bytes?): if let value = Int(bytes) { return .oversized(value) }
        case (let status?, nil): if let code = Int(status), (100...599).contains(code) { return .status(code) }
        default: break
        }
        throw ValidationError("--fail \(text) is not 500, slow:<seconds>, hang, truncated or oversized:<bytes>")
    }
}
