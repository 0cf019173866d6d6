public import SPIFFE

/// The parts of the Engine API's `GET /containers/<id>/json` answer that become selectors. Docker and Podman's
/// compatible API spell them alike.
public struct ContainerInspection: Sendable, Equatable {
    /// The full container ID the runtime answered for.
    public var id: String
    /// `Config.Image`: the image as the container was created from it, `nginx:1.27` or a digest reference.
    public var imageName: String
    /// `Image`: the image ID, which is the digest of the image's configuration (`sha256:…`).
    public var imageConfigDigest: String
    public var labels: [String: String]
    /// `Config.Env`, each `NAME=value`.
    public var environment: [String]

    public init(
        id: String,
        imageName: String,
        imageConfigDigest: String,
        labels: [String: String] = [:],
        environment: [String] = []
    ) {
        self.id = id
        self.imageName = imageName
        self.imageConfigDigest = imageConfigDigest
        self.labels = labels
        self.environment = environment
    }

    /// Reads an inspect answer; what is missing or of the wrong type is an error naming the field.
    public init(json bytes: [UInt8]) throws(AttestationError) {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes, maximumDepth: 32)
        } catch {
            throw AttestationError(.containerRuntimeUnavailable, "the container's description is not JSON: \(error)")
        }
        guard let root = document.objectValue else {
            throw AttestationError(.containerRuntimeUnavailable, "the container's description is not a JSON object")
        }
        func field(_ path: String, _ value: JSONValue?) throws(AttestationError) -> String {
            guard let string = value?.stringValue else {
                throw AttestationError(.containerRuntimeUnavailable, "the container's description has no \(path)")
            }
            return string
        }
        let config = root["Config"]?.objectValue
        id = try field("Id", root["Id"])
        imageName = try field("Config.Image", config?["Image"])
        imageConfigDigest = try field("Image", root["Image"])
        labels = [:]
        if let object = config?["Labels"]?.objectValue {
            for (key, value) in object {
                labels[key] = try field("Config.Labels.\(key.prefix(64))", value)
            }
        }
        environment = []
        for value in config?["Env"]?.arrayValue ?? [] {
            environment.append(try field("Config.Env", value))
        }
    }

    /// The selector values this container gives, each to be prefixed with `kindPrefix` (empty, or a rootless
    /// container's `user:<uid>:`).
    public func selectorValues(kindPrefix: String = "") -> [String] {
        var values = labels.sorted { $0.key < $1.key }.map { "\(kindPrefix)label:\($0.key):\($0.value)" }
        values += environment.map { "\(kindPrefix)env:\($0)" }
        if !imageName.isEmpty { values.append("\(kindPrefix)image_id:\(imageName)") }
        if !imageConfigDigest.isEmpty { values.append("\(kindPrefix)image_config_digest:\(imageConfigDigest)") }
        return values
    }
}
