public import SPIFFE
public import Foundation

/// The parts of the kubelet's `/pods` answer (a core/v1 `PodList`) that attestation reads. Every other field — and a
/// busy node's list is mostly other fields: annotations, managed fields, specs — is skipped while decoding, so
/// what stays in memory is a few strings per pod and container.
public struct PodList: Sendable {
    public var pods: [Pod]

    public init(pods: [Pod]) {
        self.pods = pods
    }

    /// Reads a `PodList` JSON document; pods without a UID are dropped, as the kubelet never sends them.
    public init(json: Data) throws(AttestationError) {
        let result = json.withUnsafeBytes { bytes in Result { () throws(AttestationError) in try Self.read(bytes) } }
        self = try result.get()
    }

    /// Reads the document from raw bytes (the HTTP body as received, without copying it).
    public static func read(_ bytes: UnsafeRawBufferPointer) throws(AttestationError) -> PodList {
        let (kind, pods) = try PodListReader.read(bytes)
        guard kind == nil || kind == "PodList" else {
            throw AttestationError(.kubeletUnavailable, "kubelet answered a \(kind ?? "") instead of a PodList")
        }
        return PodList(pods: pods.filter { !$0.metadata.uid.isEmpty })
    }

    /// The pod and container status that run `location`'s container. Nil when the container is not listed (yet).
    /// Only the pod the cgroup names is searched: a container ID is never looked up across pods. A pod UID listed
    /// twice with that container is an error.
    public func find(_ location: ContainerLocator.Location) throws(AttestationError) -> (Pod, ContainerStatus)? {
        var match: (Pod, ContainerStatus)? = nil
        for pod in pods where pod.metadata.uid == location.podUID {
            guard let status = pod.status?.container(withID: location.containerID) else { continue }
            if match != nil {
                throw AttestationError(
                    .podNotFound,
                    "pod \(location.podUID) is listed twice with container \(location.containerID)"
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

    public struct Pod: Sendable {
        public var metadata: Metadata
        public var spec: Spec?
        public var status: Status?
    }

    public struct Metadata: Sendable {
        public var name: String
        public var namespace: String
        public var uid: String
        public var labels: [String: String]?
        public var ownerReferences: [OwnerReference]?
    }

    public struct OwnerReference: Sendable {
        public var kind: String
        public var name: String
        public var uid: String
    }

    public struct Spec: Sendable {
        public var serviceAccountName: String?
        public var nodeName: String?
    }

    public struct Status: Sendable {
        public var containerStatuses: [ContainerStatus]?
        public var initContainerStatuses: [ContainerStatus]?

        /// Regular containers first, then init containers, as SPIRE searches them.
        func container(withID id: String) -> ContainerStatus? {
            (containerStatuses ?? []).first { $0.runtimeContainerID == id }
                ?? (initContainerStatuses ?? []).first { $0.runtimeContainerID == id }
        }
    }

    public struct ContainerStatus: Sendable {
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
}
