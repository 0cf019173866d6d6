public import SPIFFE

/// Turns a caller's process into selectors. Each attestor proves one kind of fact (unix ids, kubernetes pod…);
/// the agent runs them all and takes the union of what succeeded.
public protocol WorkloadAttestor: Sendable {
    /// The selector type this attestor produces, e.g. `unix`; used in logs and metrics.
    var name: String { get }

    /// Selectors for process `pid`. Throws when the facts cannot be read; an empty answer means "nothing to say".
    func attest(pid: Int32) async throws -> [Selector]
}
