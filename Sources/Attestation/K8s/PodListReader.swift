import SPIFFE

/// Reads a kubelet `PodList` straight from the response bytes, keeping only what attestation uses.
///
/// A busy node's list is about a megabyte, nearly all of it fields attestation never reads (annotations, managed
/// fields, specs, environments). A general JSON decoder builds a tree of all of it first; this reader walks the
/// bytes once, skips what it does not need without allocating, and so its memory is the few strings it keeps.
/// Malformed input is refused with where and what; nesting is bounded so hostile input cannot exhaust the stack.
struct PodListReader {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    /// Deeper nesting than this is refused.
    static let maximumDepth = 256

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The document's pods, or an error naming what is wrong.
    static func read(_ bytes: UnsafeRawBufferPointer) throws(AttestationError) -> (kind: String?, pods: [PodList.Pod]) {
        var reader = PodListReader(bytes)
        var kind: String? = nil
        var pods: [PodList.Pod] = []
        try reader.object(path: "the document") { (reader, key) throws(AttestationError) in
            switch key {
            case "kind": kind = try reader.optionalString(path: "kind")
            case "items":
                try reader.array(path: "items", allowNull: true) { (reader, index) throws(AttestationError) in
                    pods.append(try reader.pod(path: "items[\(index)]"))
                }
            default: try reader.skipValue()
            }
        }
        reader.skipWhitespace()
        guard reader.position == bytes.count else { throw reader.malformed("data after the document") }
        return (kind, pods)
    }

    // MARK: - The PodList shape

    private mutating func pod(path: String) throws(AttestationError) -> PodList.Pod {
        var metadata = PodList.Metadata(name: "", namespace: "", uid: "", labels: nil, ownerReferences: nil)
        var spec: PodList.Spec? = nil
        var status: PodList.Status? = nil
        try object(path: path) { (reader, key) throws(AttestationError) in
            switch key {
            case "metadata": metadata = try reader.metadata(path: path + ".metadata")
            case "spec":
                var value = PodList.Spec(serviceAccountName: nil, nodeName: nil)
                try reader.object(path: path + ".spec") { (reader, key) throws(AttestationError) in
                    switch key {
                    case "serviceAccountName":
                        value.serviceAccountName = try reader.optionalString(path: path + ".spec.serviceAccountName")
                    case "nodeName": value.nodeName = try reader.optionalString(path: path + ".spec.nodeName")
                    default: try reader.skipValue()
                    }
                }
                spec = value
            case "status":
                var value = PodList.Status(containerStatuses: nil, initContainerStatuses: nil)
                try reader.object(path: path + ".status") { (reader, key) throws(AttestationError) in
                    switch key {
                    case "containerStatuses":
                        value.containerStatuses = try reader.containerStatuses(path: path + ".status.containerStatuses")
                    case "initContainerStatuses":
                        value.initContainerStatuses = try reader.containerStatuses(
                            path: path + ".status.initContainerStatuses"
                        )
                    default: try reader.skipValue()
                    }
                }
                status = value
            default: try reader.skipValue()
            }
        }
        return PodList.Pod(metadata: metadata, spec: spec, status: status)
    }

    private mutating func metadata(path: String) throws(AttestationError) -> PodList.Metadata {
        var metadata = PodList.Metadata(name: "", namespace: "", uid: "", labels: nil, ownerReferences: nil)
        try object(path: path) { (reader, key) throws(AttestationError) in
            switch key {
            case "name": metadata.name = try reader.optionalString(path: path + ".name") ?? ""
            case "namespace": metadata.namespace = try reader.optionalString(path: path + ".namespace") ?? ""
            case "uid": metadata.uid = try reader.optionalString(path: path + ".uid") ?? ""
            case "labels":
                var labels: [String: String] = [:]
                try reader.object(path: path + ".labels", allowNull: true) { (reader, key) throws(AttestationError) in
                    labels[key] = try reader.string(path: path + ".labels.\(key)")
                }
                metadata.labels = labels
            case "ownerReferences":
                var owners: [PodList.OwnerReference] = []
                try reader.array(path: path + ".ownerReferences", allowNull: true) {
                    (reader, index) throws(AttestationError) in
                    let fields = try reader.strings(["kind", "name", "uid"], path: path + ".ownerReferences[\(index)]")
                    owners.append(PodList.OwnerReference(kind: fields[0]!, name: fields[1]!, uid: fields[2]!))
                }
                metadata.ownerReferences = owners
            default: try reader.skipValue()
            }
        }
        return metadata
    }

    private mutating func containerStatuses(path: String) throws(AttestationError) -> [PodList.ContainerStatus] {
        var statuses: [PodList.ContainerStatus] = []
        try array(path: path, allowNull: true) { (reader, index) throws(AttestationError) in
            let fields = try reader.strings(
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
    private mutating func strings(
        _ names: [String],
        required: Set<String>? = nil,
        path: String
    ) throws(AttestationError) -> [String?] {
        var values = [String?](repeating: nil, count: names.count)
        try object(path: path) { (reader, key) throws(AttestationError) in
            if let index = names.firstIndex(of: key) {
                values[index] = try reader.optionalString(path: path + "." + key)
            } else {
                try reader.skipValue()
            }
        }
        for (name, value) in zip(names, values) where value == nil && (required ?? Set(names)).contains(name) {
            throw AttestationError(.kubeletUnavailable, "kubelet pod list is not valid: \(path) lacks \"\(name)\"")
        }
        return values
    }

    // MARK: - JSON

    private func malformed(_ what: String) -> AttestationError {
        AttestationError(
            .kubeletUnavailable,
            "kubelet pod list is not valid: malformed JSON at byte \(position): \(what)"
        )
    }

    private func wrongType(_ path: String, _ expected: String) -> AttestationError {
        AttestationError(.kubeletUnavailable, "kubelet pod list is not valid: \(path) is not \(expected)")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func peek() throws(AttestationError) -> UInt8 {
        skipWhitespace()
        guard position < bytes.count else { throw malformed("unexpected end") }
        return bytes[position]
    }

    private mutating func expect(_ byte: UInt8) throws(AttestationError) {
        guard try peek() == byte else { throw malformed("expected '\(Character(Unicode.Scalar(byte)))'") }
        position += 1
    }

    /// `null` if it is next (consumed), otherwise false.
    private mutating func null() throws(AttestationError) -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func literal(_ word: StaticString) throws(AttestationError) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw malformed("unexpected end") }
        for offset in 0..<count where bytes[position + offset] != word.utf8Start[offset] {
            throw malformed("unknown literal")
        }
        position += count
    }

    /// Calls `member` for each key, positioned at its value, which `member` must consume.
    private mutating func object(
        path: String,
        allowNull: Bool = false,
        _ member: (inout PodListReader, String) throws(AttestationError) -> Void
    ) throws(AttestationError) {
        if allowNull, try null() { return }
        guard try peek() == UInt8(ascii: "{") else { throw wrongType(path, "an object") }
        position += 1
        if try peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            guard try peek() == UInt8(ascii: "\"") else { throw malformed("expected a key") }
            let key = try rawString()
            try expect(UInt8(ascii: ":"))
            try member(&self, key)
            switch try peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return
            default: throw malformed("expected ',' or '}'")
            }
        }
    }

    /// Calls `element` for each element, positioned at it.
    private mutating func array(
        path: String,
        allowNull: Bool = false,
        _ element: (inout PodListReader, Int) throws(AttestationError) -> Void
    ) throws(AttestationError) {
        if allowNull, try null() { return }
        guard try peek() == UInt8(ascii: "[") else { throw wrongType(path, "an array") }
        position += 1
        if try peek() == UInt8(ascii: "]") {
            position += 1
            return
        }
        var index = 0
        while true {
            try element(&self, index)
            index += 1
            switch try peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return
            default: throw malformed("expected ',' or ']'")
            }
        }
    }

    private mutating func string(path: String) throws(AttestationError) -> String {
        guard try peek() == UInt8(ascii: "\"") else { throw wrongType(path, "a string") }
        return try rawString()
    }

    private mutating func optionalString(path: String) throws(AttestationError) -> String? {
        if try null() { return nil }
        return try string(path: path)
    }

    /// The string starting at the current quote, escapes decoded.
    private mutating func rawString() throws(AttestationError) -> String {
        position += 1
        let start = position
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                let value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                position += 1
                return value
            case UInt8(ascii: "\\"):
                return try escapedString(from: start)
            case 0..<0x20: throw malformed("control character in a string")
            default: position += 1
            }
        }
        throw malformed("unterminated string")
    }

    private mutating func escapedString(from start: Int) throws(AttestationError) -> String {
        var output = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""): return String(decoding: output, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { break }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw malformed("unpaired surrogate") }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw malformed("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw malformed("invalid \\u escape") }
                    output.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: throw malformed("invalid escape")
                }
            case 0..<0x20: throw malformed("control character in a string")
            default: output.append(byte)
            }
        }
        throw malformed("unterminated string")
    }

    private mutating func hex4() throws(AttestationError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw malformed("unexpected end") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw malformed("invalid \\u escape")
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }

    /// Skips one value of any kind without keeping it, checking its grammar; nesting is tracked on a small stack
    /// of container kinds, not by recursion.
    private mutating func skipValue() throws(AttestationError) {
        var containers: [Bool] = []  // true: object, false: array
        expectingValue: while true {
            switch try peek() {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = bytes[position] == UInt8(ascii: "{")
                position += 1
                if try peek() == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    position += 1
                    break
                }
                guard containers.count < Self.maximumDepth else {
                    throw malformed("nested deeper than \(Self.maximumDepth)")
                }
                containers.append(isObject)
                if isObject { try skipKey() }
                continue expectingValue
            case UInt8(ascii: "\""): try skipString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber()
            default: throw malformed("expected a value")
            }
            // A value ended: close containers, or move to the next member or element.
            while let isObject = containers.last {
                switch try peek() {
                case UInt8(ascii: ","):
                    position += 1
                    if isObject { try skipKey() }
                    continue expectingValue
                case isObject ? UInt8(ascii: "}") : UInt8(ascii: "]"):
                    position += 1
                    containers.removeLast()
                default: throw malformed(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            }
            return
        }
    }

    private mutating func skipKey() throws(AttestationError) {
        guard try peek() == UInt8(ascii: "\"") else { throw malformed("expected a key") }
        try skipString()
        try expect(UInt8(ascii: ":"))
    }

    private mutating func skipString() throws(AttestationError) {
        position += 1
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                return
            case UInt8(ascii: "\\"): position += 2
            case 0..<0x20: throw malformed("control character in a string")
            default: position += 1
            }
        }
        throw malformed("unterminated string")
    }

    private mutating func skipNumber() throws(AttestationError) {
        let start = position
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                UInt8(ascii: "e"), UInt8(ascii: "E"):
                position += 1
            default:
                guard position > start else { throw malformed("invalid number") }
                return
            }
        }
    }
}
