import Foundation
public import SPIFFE

/// The `docker` attestor: finds the caller's Docker or Podman container from its cgroups
/// (``RuntimeContainerLocator``), then asks that runtime's Engine API about it: `docker:label:<k>:<v>`,
/// `docker:env:<NAME>=<value>`, `docker:image_id:<image>`, `docker:image_config_digest:<sha256:…>`.
///
/// Docker containers are asked of `dockerSocketPath` and rootful Podman's of `podmanSocketPath`, sockets root must
/// own. A rootless Podman container, found below `user@<uid>.service`, is asked of the socket the template gives for
/// that uid, which that user must own; since the user decides everything that socket says, its selectors carry the
/// uid (`docker:user:<uid>:label:…`) and can never match an entry written for system containers. A runtime that is
/// not configured has nothing to say; one that is configured and cannot answer, or does not know the container,
/// fails the attestation.
public struct DockerAttestor: WorkloadAttestor {
    public struct Config: Sendable, Equatable {
        public var dockerSocketPath: String?
        public var podmanSocketPath: String?
        /// A path with `%d` where the uid goes: `/run/user/%d/podman/podman.sock`.
        public var podmanSocketPathTemplate: String?
        /// The Engine API version to ask for (`1.41`); nil lets the runtime choose.
        public var apiVersion: String?
        public var timeout: Duration
        public var procRoot: String

        public init(
            dockerSocketPath: String? = "/var/run/docker.sock",
            podmanSocketPath: String? = nil,
            podmanSocketPathTemplate: String? = nil,
            apiVersion: String? = nil,
            timeout: Duration = .seconds(5),
            procRoot: String = "/proc"
        ) {
            self.dockerSocketPath = dockerSocketPath
            self.podmanSocketPath = podmanSocketPath
            self.podmanSocketPathTemplate = podmanSocketPathTemplate
            self.apiVersion = apiVersion
            self.timeout = timeout
            self.procRoot = procRoot
        }
    }

    public let config: Config
    public var name: String { "docker" }

    public init(config: Config = Config()) {
        self.config = config
    }

    public func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        guard let location = try RuntimeContainerLocator.locate(pid: process.pid, procRoot: config.procRoot),
            let client = client(for: location.runtime)
        else { return [] }
        guard
            let container = try await BlockingCall.run({ () throws(AttestationError) in
                try client.inspect(location.containerID)
            })
        else {
            throw AttestationError(.containerRuntimeUnavailable, "\(client.socketPath) does not know \(location)")
        }
        guard container.id == location.containerID else {
            throw AttestationError(
                .containerRuntimeUnavailable,
                "\(client.socketPath) answered for container \(container.id.prefix(64)) when asked for \(location)"
            )
        }
        var prefix = ""
        if case .rootlessPodman(let uid) = location.runtime { prefix = "user:\(uid):" }
        return try container.selectorValues(kindPrefix: prefix).map { try Selector(type: name, value: $0) }
    }

    /// The Engine API client for `runtime`, or nil when that runtime is not configured.
    func client(for runtime: RuntimeContainerLocator.Runtime) -> EngineAPIClient? {
        let path: String?
        let owner: UInt32
        switch runtime {
        case .docker: (path, owner) = (config.dockerSocketPath, 0)
        case .podman: (path, owner) = (config.podmanSocketPath, 0)
        case .rootlessPodman(let uid):
            path = config.podmanSocketPathTemplate.map { $0.replacingOccurrences(of: "%d", with: String(uid)) }
            owner = uid
        }
        return path.map {
            EngineAPIClient(socketPath: $0, owner: owner, apiVersion: config.apiVersion, timeout: config.timeout)
        }
    }
}
