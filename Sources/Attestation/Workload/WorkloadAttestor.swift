public import SPIFFE

/// Turns a caller's process into selectors. Each attestor proves one kind of fact (unix ids, kubernetes pod…);
/// the agent runs them all and takes the union.
public protocol WorkloadAttestor: Sendable {
    /// The selector type this attestor produces, e.g. `unix`; used in logs and metrics.
    var name: String { get }

    /// Selectors for `process`. Throws when the facts cannot be read; an empty answer means "nothing to say".
    /// The caller checks the process's pin before and after, so what is read from `/proc/<pid>` meanwhile belongs
    /// to the process that connected.
    func attest(_ process: WorkloadProcess) async throws -> [Selector]
}
