import SPIFFE
import Synchronization

/// The entries instantiated from templated entries for the callers seen so far (standalone mode).
///
/// A caller's selectors fill a template once; the instance is then an ordinary entry the cache mints and rotates,
/// matching exactly the callers that gave the same values. Callers choose some selector values (a user's own
/// systemd units, say), so instances are bounded: beyond `limit` the least recently used is dropped, and with it its
/// SVID at the next sync; a caller that comes back instantiates it again.
final class TemplateInstances: Sendable {
    private struct Instance {
        let entry: RegistrationEntry
        let template: EntryTemplate
        var lastUsed: UInt64
    }

    private struct State {
        var templates: [EntryTemplate]
        var limit: Int
        var instances: [String: Instance] = [:]
        var useClock: UInt64 = 0
    }

    private let state: Mutex<State>

    init(templates: [EntryTemplate], limit: Int) {
        state = Mutex(State(templates: templates, limit: limit))
    }

    /// New templates (a reload): instances of templates that are gone or changed are dropped.
    func replace(templates: [EntryTemplate], limit: Int) {
        state.withLock { state in
            let kept = Set(templates)
            state.instances = state.instances.filter { kept.contains($0.value.template) }
            state.templates = templates
            state.limit = limit
            Self.evict(&state)
        }
    }

    /// Instantiates every template that applies to a caller with `selectors`, and marks them used. Returns whether
    /// any instance is new: the cache must learn it (a sync) before the caller is served.
    func instantiate(for selectors: Set<Selector>) -> Bool {
        state.withLock { state in
            guard !state.templates.isEmpty else { return false }
            var added = false
            for template in state.templates {
                guard let instance = template.instance(for: selectors) else { continue }
                let entry = EntrySettings.identified(instance)
                state.useClock += 1
                if state.instances[entry.id] == nil {
                    state.instances[entry.id] = Instance(entry: entry, template: template, lastUsed: state.useClock)
                    added = true
                } else {
                    state.instances[entry.id]?.lastUsed = state.useClock
                }
            }
            if added { Self.evict(&state) }
            return added
        }
    }

    /// The instances, in a stable order (by ID), so a sync with nothing new changes nothing in the cache.
    var entries: [RegistrationEntry] {
        state.withLock { state in state.instances.values.map(\.entry).sorted { $0.id < $1.id } }
    }

    var count: Int { state.withLock { $0.instances.count } }

    private static func evict(_ state: inout State) {
        let excess = state.instances.count - state.limit
        guard excess > 0 else { return }
        let oldest = state.instances.sorted { $0.value.lastUsed < $1.value.lastUsed }.prefix(excess)
        for (id, _) in oldest { state.instances[id] = nil }
    }
}
