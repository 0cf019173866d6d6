public import Attestation

/// `[attestors.systemd]`: which bus to ask systemd on, and for how long.
public struct SystemdAttestorSettings: Sendable, Equatable {
    public var attestor: SystemdAttestor.Config

    /// `[attestors.systemd]`, or nil when it is not enabled (its keys are checked either way).
    static func read(_ section: SectionReader) -> SystemdAttestorSettings? {
        var attestor = SystemdAttestor.Config()
        if let address = section.string("bus_address") {
            if address.hasPrefix("unix:path=") && address.count > 10 {
                attestor.busAddress = address
            } else {
                section.problem("bus_address", "must be a D-Bus address of the form unix:path=/absolute/socket")
            }
        }
        attestor.timeout = section.duration("request_timeout", default: attestor.timeout)
        guard section.bool("enabled", default: false) else { return nil }
        return SystemdAttestorSettings(attestor: attestor)
    }

    func makeAttestor() -> SystemdAttestor { SystemdAttestor(config: attestor) }
}
