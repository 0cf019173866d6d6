public import Attestation
import Foundation

/// `[attestors.docker]`: the Engine API sockets of Docker and Podman (SPIRE's keys), and how long to wait on them.
public struct DockerAttestorSettings: Sendable, Equatable {
    public var attestor: DockerAttestor.Config

    /// `[attestors.docker]`, or nil when it is not enabled (its keys are checked either way).
    static func read(_ section: SectionReader) -> DockerAttestorSettings? {
        var attestor = DockerAttestor.Config()
        attestor.dockerSocketPath = socketPath(section, "docker_socket_path", default: "unix:///var/run/docker.sock")
        attestor.podmanSocketPath = socketPath(section, "podman_socket_path", default: nil)
        attestor.podmanSocketPathTemplate = socketPath(section, "podman_socket_path_template", default: nil)
        if let template = attestor.podmanSocketPathTemplate, template.components(separatedBy: "%d").count != 2 {
            section.problem("podman_socket_path_template", "must hold %d exactly once, where the uid goes")
        }
        if let version = section.string("docker_version") {
            let parts = version.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 2,
                parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
            {
                attestor.apiVersion = version
            } else {
                section.problem("docker_version", "must be an Engine API version such as \"1.41\"")
            }
        }
        attestor.timeout = section.duration("request_timeout", default: attestor.timeout)
        guard section.bool("enabled", default: false) else { return nil }
        if attestor.dockerSocketPath == nil && attestor.podmanSocketPath == nil
            && attestor.podmanSocketPathTemplate == nil
        {
            section.problem(
                "enabled",
                "needs at least one of docker_socket_path, podman_socket_path, podman_socket_path_template"
            )
        }
        return DockerAttestorSettings(attestor: attestor)
    }

    /// `unix:///path` or `/path`; an empty string turns that runtime off.
    private static func socketPath(_ section: SectionReader, _ key: String, default value: String?) -> String? {
        guard let text = section.string(key) ?? value, !text.isEmpty else { return nil }
        let path = text.hasPrefix("unix://") ? String(text.dropFirst(7)) : text
        guard path.hasPrefix("/") else {
            section.problem(key, "must be unix:///absolute/path or an absolute path")
            return nil
        }
        return path
    }

    func makeAttestor() -> DockerAttestor { DockerAttestor(config: attestor) }
}
