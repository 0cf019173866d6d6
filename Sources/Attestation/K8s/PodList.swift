public import Foundation

/// The parts of the kubelet's `/pods` answer (a core/v1 `PodList`) that attestation reads. Every other field — and a
/// busy node's list is mostly other fields: annotations, managed fields, specs — is skipped while decoding, so
/// what stays in memory is a few strings per pod and container.
public struct PodList: Sendable {
    public var pods: [Pod]

    public init(pods: [Pod]) {
        self.pods = pods
    }

    /// Decodes a `PodList` JSON document; pods without a UID are dropped, as the kubelet never sends them.
    public init(json: Data) throws(AttestationError) {
        do {
            let document = try JSONDecoder().decode(Document.self, from: json)
            guard document.kind == nil || document.kind == "PodList" else {
                throw AttestationError(
                    .kubeletUnavailable,
                    "kubelet answered a \(document.kind ?? "") instead of a PodList"
                )
            }
            pods = (document.items ?? []).filter { !$0.metadata.uid.isEmpty }
        } catch let error as AttestationError {
            throw error
        } catch let error as DecodingError {
            throw AttestationError(.kubeletUnavailable, "kubelet pod list is not valid: \(Self.describe(error))")
        } catch {
            throw AttestationError(.kubeletUnavailable, "kubelet pod list is not valid JSON")
        }
    }

    /// The pod and container status that run `location`'s container. Nil when the container is not listed (yet);
    /// a container ID claimed by two pods is an error.
    public func find(_ location: ContainerLocator.Location) throws(AttestationError) -> (Pod, ContainerStatus)? {
        var match: (Pod, ContainerStatus)? = nil
        for pod in pods where location.podUID == nil || pod.metadata.uid == location.podUID {
            guard let status = pod.status?.container(withID: location.containerID) else { continue }
            if let match, match.0.metadata.uid != pod.metadata.uid {
                throw AttestationError(
                    .podNotFound,
                    "container \(location.containerID) is listed in two pods: \(match.0.metadata.uid) and \(pod.metadata.uid)"
                )
            }
            match = (pod, status)
        }
        return match
    }

    /// The pod with `uid`, if listed.
    public func pod(uid: String) -> Pod? {
        pods.first { $0.metadata.uid == uid }
    }

    struct Document: Decodable {
        var kind: String?
        var items: [Pod]?
    }

    public struct Pod: Decodable, Sendable {
        public var metadata: Metadata
        public var spec: Spec?
        public var status: Status?
    }

    public struct Metadata: Decodable, Sendable {
        public var name: String
        public var namespace: String
        public var uid: String
        public var labels: [String: String]?
        public var ownerReferences: [OwnerReference]?

        enum CodingKeys: CodingKey { case name, namespace, uid, labels, ownerReferences }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
            namespace = try container.decodeIfPresent(String.self, forKey: .namespace) ?? ""
            uid = try container.decodeIfPresent(String.self, forKey: .uid) ?? ""
            labels = try container.decodeIfPresent([String: String].self, forKey: .labels)
            ownerReferences = try container.decodeIfPresent([OwnerReference].self, forKey: .ownerReferences)
        }
    }

    public struct OwnerReference: Decodable, Sendable {
        public var kind: String
        public var name: String
        public var uid: String
    }

    public struct Spec: Decodable, Sendable {
        public var serviceAccountName: String?
        public var nodeName: String?
    }

    public struct Status: Decodable, Sendable {
        public var containerStatuses: [ContainerStatus]?
        public var initContainerStatuses: [ContainerStatus]?

        /// Regular containers first, then init containers, as SPIRE searches them.
        func container(withID id: String) -> ContainerStatus? {
            (containerStatuses ?? []).first { $0.runtimeContainerID == id }
                ?? (initContainerStatuses ?? []).first { $0.runtimeContainerID == id }
        }
    }

    public struct ContainerStatus: Decodable, Sendable {
        public var name: String
        public var image: String?
        public var imageID: String?
        /// `<runtime>://<64-hex>`, empty while the container is being created.
        public var containerID: String?

        /// The part after `<runtime>://`, which is what cgroups name.
        var runtimeContainerID: String? {
            guard let containerID, let separator = containerID.range(of: "://") else { return nil }
            let id = containerID[separator.upperBound...]
            return id.isEmpty ? nil : String(id)
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "the document" : String(keys.drop { $0 == "." })
        }
        switch error {
        case .typeMismatch(let type, let context): return "\(path(context)) is not a \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)) is null where a \(type) is needed"
        case .keyNotFound(let key, let context): return "\(path(context)) lacks \"\(key.stringValue)\""
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "malformed JSON" : "\(path(context)) is malformed"
        @unknown default: return "malformed"
        }
    }
}
