import Attestation
import Synchronization
import Timing

/// The workload attestors in use, replaced as a whole when a reload changes their settings.
final class AttestorSet: Sendable {
    private let attestors: Mutex<[any WorkloadAttestor]>

    init(_ attestors: [any WorkloadAttestor]) {
        self.attestors = Mutex(attestors)
    }

    var current: [any WorkloadAttestor] { attestors.withLock { $0 } }

    func replace(with attestors: [any WorkloadAttestor]) {
        self.attestors.withLock { $0 = attestors }
    }

    /// The attestors a configuration asks for.
    static func attestors(for config: AgentConfig, clock: any AgentClock) -> [any WorkloadAttestor] {
        var attestors: [any WorkloadAttestor] = []
        if config.unixAttestor.enabled { attestors.append(config.unixAttestor.makeAttestor(clock: clock)) }
        if let k8s = config.k8sAttestor { attestors.append(k8s.makeAttestor(clock: clock)) }
        if let systemd = config.systemdAttestor { attestors.append(systemd.makeAttestor()) }
        if let docker = config.dockerAttestor { attestors.append(docker.makeAttestor()) }
        return attestors
    }
}
