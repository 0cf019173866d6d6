import Attestation
import Timing

/// `[attestors.unix]`.
public struct UnixAttestorSettings: Sendable, Equatable {
    public var enabled: Bool
    /// Adds `unix:path` and `unix:sha256`.
    public var discoverWorkloadPath: Bool
    /// Largest executable hashed, in bytes; 0 lifts the size limit (the time limit stays).
    public var workloadSizeLimit: Int64

    static func read(_ section: SectionReader) -> UnixAttestorSettings {
        var sizeLimit = section.integer("workload_size_limit") ?? ExecutableHasher.Limits.defaults.sizeLimit
        if sizeLimit < 0 {
            section.problem("workload_size_limit", "cannot be negative")
            sizeLimit = ExecutableHasher.Limits.defaults.sizeLimit
        }
        return UnixAttestorSettings(
            enabled: section.bool("enabled", default: true),
            discoverWorkloadPath: section.bool("discover_workload_path", default: false),
            workloadSizeLimit: sizeLimit
        )
    }

    func makeAttestor(clock: any AgentClock) -> UnixAttestor {
        UnixAttestor(
            config: .init(
                discoverWorkloadPath: discoverWorkloadPath,
                hashLimits: .init(sizeLimit: workloadSizeLimit, timeLimit: ExecutableHasher.Limits.defaults.timeLimit)
            ),
            clock: clock
        )
    }
}
