import SPIFFE

/// `log_selectors`: the selector prefixes allowed in logs and audit records. Selectors say a great deal about a
/// workload (namespaces, labels, image digests, paths), so none are logged unless the operator lists them.
struct LogSelectors: Sendable, Equatable {
    let prefixes: [String]

    /// The allowed ones, sorted, and how many were left out.
    func filter(_ selectors: Set<Selector>) -> (shown: [String], hidden: Int) {
        let all = selectors.map(\.description)
        let shown = all.filter { selector in prefixes.contains { selector.hasPrefix($0) } }.sorted()
        return (shown, all.count - shown.count)
    }

    /// The log value: `[unix:uid:1000] (+3 hidden by log_selectors)`.
    func describe(_ selectors: Set<Selector>) -> String {
        let (shown, hidden) = filter(selectors)
        let list = "[" + shown.joined(separator: ", ") + "]"
        return hidden == 0 ? list : list + " (+\(hidden) hidden by log_selectors)"
    }
}
