package import Foundation

/// A pod as the fake kubelet lists it, with the fields attestation reads and, optionally, the bulk a real pod
/// carries (annotations, environment, managed fields) so pod lists have a realistic size.
package struct FakePod: Sendable {
    package struct Container: Sendable {
        package var name: String
        package var image: String
        package var imageID: String
        /// `containerd://<64-hex>`; empty while the runtime is still creating it.
        package var containerID: String

        package init(name: String, image: String, imageID: String? = nil, containerID: String) {
            self.name = name
            self.image = image
            self.imageID =
                imageID
                ?? "\(image.split(separator: ":").first ?? "image")@sha256:\(String(repeating: "ab", count: 32))"
            self.containerID = containerID
        }
    }

    package var name: String
    package var namespace: String
    package var uid: String
    package var serviceAccount: String
    package var nodeName: String
    package var labels: [String: String]
    package var owner: (kind: String, name: String, uid: String)?
    package var containers: [Container]
    package var initContainers: [Container]
    /// Extra bytes of annotations and environment, as real pods carry; 0 for a minimal pod.
    package var padding: Int

    package init(
        name: String,
        namespace: String,
        uid: String = UUID().uuidString.lowercased(),
        serviceAccount: String = "default",
        nodeName: String = "node-1",
        labels: [String: String] = [:],
        owner: (kind: String, name: String, uid: String)? = nil,
        containers: [Container],
        initContainers: [Container] = [],
        padding: Int = 0
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.serviceAccount = serviceAccount
        self.nodeName = nodeName
        self.labels = labels
        self.owner = owner
        self.containers = containers
        self.initContainers = initContainers
        self.padding = padding
    }

    /// A random 64-hex container ID.
    package static func randomContainerID() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// `count` pods of a busy node: three containers and an init container each, labels, an owner, and about
    /// `bytesPerPod` of JSON in all (a 110-pod node's list is about 1 MiB).
    package static func generated(count: Int, bytesPerPod: Int = 9_500) -> [FakePod] {
        (0..<count).map { index in
            let app = "app-\(index)"
            let container = { (name: String) in
                Container(
                    name: name,
                    image: "registry.example/\(app)/\(name):1.\(index)",
                    containerID: "containerd://\(randomContainerID())"
                )
            }
            return FakePod(
                name: "\(app)-7d9c8b-x\(index)",
                namespace: "ns-\(index % 12)",
                serviceAccount: "sa-\(index)",
                labels: ["app": app, "pod-template-hash": "7d9c8b", "tier": index % 2 == 0 ? "web" : "worker"],
                owner: ("ReplicaSet", "\(app)-7d9c8b", UUID().uuidString.lowercased()),
                containers: [container("main"), container("istio-proxy"), container("log-shipper")],
                initContainers: [container("istio-init")],
                padding: bytesPerPod
            )
        }
    }

    /// The pod as core/v1 JSON.
    package var jsonObject: [String: Any] {
        var metadata: [String: Any] = [
            "name": name, "namespace": namespace, "uid": uid, "resourceVersion": "123456",
            "creationTimestamp": "2026-11-28T10:00:00Z", "labels": labels,
        ]
        if let owner {
            metadata["ownerReferences"] = [
                ["apiVersion": "apps/v1", "kind": owner.kind, "name": owner.name, "uid": owner.uid, "controller": true]
            ]
        }
        func status(_ container: Container) -> [String: Any] {
            [
                "name": container.name, "image": container.image, "imageID": container.imageID,
                "containerID": container.containerID, "ready": !container.containerID.isEmpty, "restartCount": 0,
                "state": ["running": ["startedAt": "2026-11-28T10:00:05Z"]],
            ]
        }
        func spec(_ container: Container) -> [String: Any] {
            [
                "name": container.name, "image": container.image, "imagePullPolicy": "IfNotPresent",
                "resources": [
                    "limits": ["cpu": "500m", "memory": "256Mi"], "requests": ["cpu": "100m", "memory": "64Mi"],
                ],
                "terminationMessagePath": "/dev/termination-log",
            ]
        }
        // Roughly what annotations, env and managedFields add on a real node; the attestor must skip it.
        let chunk = 200
        let filler = (0..<max(0, padding / 2 / chunk)).map { index in
            ["name": "ENV_\(index)", "value": String(repeating: "x", count: chunk - 40)]
        }
        return [
            "metadata": metadata.merging(
                [
                    "annotations": [
                        "kubectl.kubernetes.io/last-applied-configuration": String(repeating: "{}", count: padding / 4)
                    ]
                ]
            ) { $1 },
            "spec": [
                "serviceAccountName": serviceAccount, "nodeName": nodeName,
                "containers": containers.enumerated().map { index, container in
                    index == 0 ? spec(container).merging(["env": filler]) { $1 } : spec(container)
                },
                "initContainers": initContainers.map(spec),
            ] as [String: Any],
            "status": [
                "phase": "Running", "podIP": "10.0.0.\(abs(uid.hashValue) % 250)", "hostIP": "192.168.1.10",
                "qosClass": "Burstable",
                "containerStatuses": containers.map(status),
                "initContainerStatuses": initContainers.map(status),
            ] as [String: Any],
        ]
    }

    /// A `PodList` document of `pods`.
    package static func podListJSON(_ pods: [FakePod]) -> Data {
        let document: [String: Any] = [
            "kind": "PodList", "apiVersion": "v1", "metadata": [:] as [String: Any], "items": pods.map(\.jsonObject),
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
    }
}
