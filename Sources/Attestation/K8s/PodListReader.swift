import SPIFFE

/// Reads a kubelet `PodList` straight from the response bytes, keeping only what attestation uses.
///
/// A busy node's list is about a megabyte, nearly all of it fields attestation never reads (annotations, managed
/// fields, specs, environments). A general JSON decoder builds a tree of all of it first; this reader walks the
/// bytes once with ``JSONScanner``, skips what it does not need without allocating, and so its memory is the few
/// strings it keeps. Malformed input is refused with where and what; nesting is bounded so hostile input cannot
/// exhaust the stack.
enum PodListReader {
    /// Deeper nesting than this is refused.
    static let maximumDepth = 256

    typealias Failure = JSONScanner.Failure

    /// The document's pods, or an error naming what is wrong.
    static func read(_ bytes: UnsafeRawBufferPointer) throws(AttestationError) -> (kind: String?, pods: [PodList.Pod]) {
        var scanner = JSONScanner(bytes)
        var kind: String? = nil
        var pods: [PodList.Pod] = []
        do {
            try object(&scanner, path: "the document") { (scanner, key) throws(Failure) in
                switch key {
                case "kind": kind = try optionalString(&scanner, path: "kind")
                case "items":
                    try array(&scanner, path: "items") { (scanner, index) throws(Failure) in
                        pods.append(try pod(&scanner, path: "items[\(index)]"))
                    }
                default: try scanner.skipValue(maximumDepth: maximumDepth)
                }
            }
            guard scanner.isAtEnd() else { throw scanner.malformed("data after the document") }
        } catch {
            throw AttestationError(.kubeletUnavailable, "kubelet pod list is not valid: \(error)")
        }
        return (kind, pods)
    }

    // MARK: - The PodList shape

    private static func pod(_ scanner: inout JSONScanner, path: String) throws(Failure) -> PodList.Pod {
        var metadata = PodList.Metadata(name: "", namespace: "", uid: "", labels: nil, ownerReferences: nil)
        var spec: PodList.Spec? = nil
        var status: PodList.Status? = nil
        try object(&scanner, path: path) { (scanner, key) throws(Failure) in
            switch key {
            case "metadata": metadata = try self.metadata(&scanner, path: path + ".metadata")
            case "spec":
                var value = PodList.Spec(serviceAccountName: nil, nodeName: nil)
                try object(&scanner, path: path + ".spec") { (scanner, key) throws(Failure) in
                    switch key {
                    case "serviceAccountName":
                        value.serviceAccountName = try optionalString(&scanner, path: path + ".spec.serviceAccountName")
                    case "nodeName": value.nodeName = try optionalString(&scanner, path: path + ".spec.nodeName")
                    default: try scanner.skipValue(maximumDepth: maximumDepth)
                    }
                }
                spec = value
            case "status":
                var value = PodList.Status(containerStatuses: nil, initContainerStatuses: nil)
                try object(&scanner, path: path + ".status") { (scanner, key) throws(Failure) in
                    switch key {
                    case "containerStatuses":
                        value.containerStatuses = try containerStatuses(
                            &scanner,
                            path: path + ".status.containerStatuses"
                        )
                    case "initContainerStatuses":
                        value.initContainerStatuses = try containerStatuses(
                            &scanner,
                            path: path + ".status.initContainerStatuses"
                        )
                    default: try scanner.skipValue(maximumDepth: maximumDepth)
                    }
                }
                status = value
            default: try scanner.skipValue(maximumDepth: maximumDepth)
            }
        }
        return PodList.Pod(metadata: metadata, spec: spec, status: status)
    }

    private static func metadata(_ scanner: inout JSONScanner, path: String) throws(Failure) -> PodList.Metadata {
        var metadata = PodList.Metadata(name: "", namespace: "", uid: "", labels: nil, ownerReferences: nil)
        try object(&scanner, path: path) { (scanner, key) throws(Failure) in
            switch key {
            case "name": metadata.name = try optionalString(&scanner, path: path + ".name") ?? ""
            case "namespace": metadata.namespace = try optionalString(&scanner, path: path + ".namespace") ?? ""
            case "uid": metadata.uid = try optionalString(&scanner, path: path + ".uid") ?? ""
            case "labels":
                var labels: [String: String] = [:]
                try object(&scanner, path: path + ".labels") { (scanner, key) throws(Failure) in
                    labels[key] = try string(&scanner, path: path + ".labels.\(key)")
                }
                metadata.labels = labels
            case "ownerReferences":
                var owners: [PodList.OwnerReference] = []
                try array(&scanner, path: path + ".ownerReferences") { (scanner, index) throws(Failure) in
                    let fields = try strings(
                        &scanner,
                        ["kind", "name", "uid"],
                        path: path + ".ownerReferences[\(index)]"
                    )
                    owners.append(PodList.OwnerReference(kind: fields[0]!, name: fields[1]!, uid: fields[2]!))
                }
                metadata.ownerReferences = owners
            default: try scanner.skipValue(maximumDepth: maximumDepth)
            }
        }
        return metadata
    }

    private static func containerStatuses(
        _ scanner: inout JSONScanner,
        path: String
    ) throws(Failure) -> [PodList.ContainerStatus] {
        var statuses: [PodList.ContainerStatus] = []
        try array(&scanner, path: path) { (scanner, index) throws(Failure) in
            let fields = try strings(
                &scanner,
                ["name", "image", "imageID", "containerID"],
                required: ["name"],
                path: path + "[\(index)]"
            )
            statuses.append(
                PodList.ContainerStatus(name: fields[0]!, image: fields[1], imageID: fields[2], containerID: fields[3])
            )
        }
        return statuses
    }

    /// An object's string members named `names` (in that order), skipping the rest; every name is required
    /// unless `required` says otherwise.
    private static func strings(
        _ scanner: inout JSONScanner,
        _ names: [String],
        required: Set<String>? = nil,
        path: String
    ) throws(Failure) -> [String?] {
        var values = [String?](repeating: nil, count: names.count)
        try object(&scanner, path: path) { (scanner, key) throws(Failure) in
            if let index = names.firstIndex(of: key) {
                values[index] = try optionalString(&scanner, path: path + "." + key)
            } else {
                try scanner.skipValue(maximumDepth: maximumDepth)
            }
        }
        for (name, value) in zip(names, values) where value == nil && (required ?? Set(names)).contains(name) {
            throw scanner.failure("\(path) lacks \"\(name)\"")
        }
        return values
    }

    // MARK: - Typed members

    /// An object (or null, read as empty), with `member` called at each value.
    private static func object(
        _ scanner: inout JSONScanner,
        path: String,
        _ member: (inout JSONScanner, String) throws(Failure) -> Void
    ) throws(Failure) {
        if try scanner.null() { return }
        guard try scanner.peek() == UInt8(ascii: "{") else { throw scanner.failure("\(path) is not an object") }
        try scanner.object(member)
    }

    /// An array (or null, read as empty), with `element` called at each element.
    private static func array(
        _ scanner: inout JSONScanner,
        path: String,
        _ element: (inout JSONScanner, Int) throws(Failure) -> Void
    ) throws(Failure) {
        if try scanner.null() { return }
        guard try scanner.peek() == UInt8(ascii: "[") else { throw scanner.failure("\(path) is not an array") }
        try scanner.array(element)
    }

    private static func string(_ scanner: inout JSONScanner, path: String) throws(Failure) -> String {
        guard try scanner.peek() == UInt8(ascii: "\"") else { throw scanner.failure("\(path) is not a string") }
        return try scanner.string()
    }

    private static func optionalString(_ scanner: inout JSONScanner, path: String) throws(Failure) -> String? {
        if try scanner.null() { return nil }
        return try string(&scanner, path: path)
    }
}
