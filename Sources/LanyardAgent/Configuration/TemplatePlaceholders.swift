/// Which selector kinds a templated entry's `{placeholders}` may name: those an enabled attestor produces with one
/// value per caller that can fit a SPIFFE ID path. `config check` reports any other with the reason.
enum TemplatePlaceholders {
    /// Per attestor: kinds with one value per caller, kinds that need a key (`k8s:pod-label:<key>`), kinds a caller
    /// has several of, and kinds whose values never fit a path (slashes, colons).
    private struct Kinds {
        var single: Set<String> = []
        var keyed: Set<String> = []
        var several: Set<String> = []
        var unfit: Set<String> = []
    }

    private static let attestors: [String: Kinds] = [
        "unix": Kinds(
            single: ["uid", "user", "gid", "group", "sha256"],
            several: ["supplementary_gid", "supplementary_group"],
            unfit: ["path"]
        ),
        "k8s": Kinds(
            single: [
                "ns", "sa", "node-name", "pod-uid", "pod-name", "container-name", "pod-image-count",
                "pod-init-image-count",
            ],
            keyed: ["pod-label", "pod-owner", "pod-owner-uid"],
            several: ["pod-image", "pod-init-image", "container-image"]
        ),
        "systemd": Kinds(
            single: ["id", "slice", "template", "instance"],
            keyed: ["user_unit"],
            unfit: ["fragment_path"]
        ),
        "docker": Kinds(
            keyed: ["label", "user"],
            unfit: ["env", "image_id", "image_config_digest"]
        ),
    ]

    /// Why `placeholder` cannot be filled given the `enabled` attestors, or nil when it can.
    static func problem(with placeholder: String, enabled: Set<String>) -> String? {
        let parts = placeholder.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let (type, kind) = (parts[0], parts[1])
        let hasKey = parts.count == 3
        guard let kinds = attestors[type] else {
            return "{\(placeholder)}: no attestor produces \(type) selectors"
        }
        guard enabled.contains(type) else {
            return "{\(placeholder)}: the \(type) attestor is not enabled"
        }
        if kinds.single.contains(kind) {
            return hasKey ? "{\(placeholder)}: \(type):\(kind) has no key; write {\(type):\(kind)}" : nil
        }
        if kinds.keyed.contains(kind) {
            return hasKey
                ? nil : "{\(placeholder)} is ambiguous: a caller has one per key; name it, {\(type):\(kind):<key>}"
        }
        if kinds.several.contains(kind) {
            return "{\(placeholder)} is ambiguous: a caller can have several \(type):\(kind) selectors"
        }
        if kinds.unfit.contains(kind) {
            return "{\(placeholder)}: \(type):\(kind) values hold characters a SPIFFE ID path cannot"
        }
        return "{\(placeholder)}: the \(type) attestor has no \(kind) selectors"
    }
}
