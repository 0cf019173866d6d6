public import SPIFFE

/// The `k8s:` selectors of a pod and of the caller's container, spelled as SPIRE spells them.
public enum K8sSelectors {
    /// Pod-level selectors: namespace, service account, node, names, labels, owners and every image.
    public static func pod(_ pod: PodList.Pod) -> [Selector] {
        var values: [(String, String?)] = [
            ("ns", pod.metadata.namespace),
            ("sa", pod.spec?.serviceAccountName),
            ("node-name", pod.spec?.nodeName),
            ("pod-uid", pod.metadata.uid),
            ("pod-name", pod.metadata.name),
        ]
        for (key, value) in (pod.metadata.labels ?? [:]).sorted(by: { $0.key < $1.key }) {
            values.append(("pod-label", "\(key):\(value)"))
        }
        for owner in pod.metadata.ownerReferences ?? [] {
            values.append(("pod-owner", "\(owner.kind):\(owner.name)"))
            values.append(("pod-owner-uid", "\(owner.kind):\(owner.uid)"))
        }
        let containers = pod.status?.containerStatuses ?? []
        let initContainers = pod.status?.initContainerStatuses ?? []
        values.append(("pod-image-count", String(containers.count)))
        values.append(("pod-init-image-count", String(initContainers.count)))
        for status in containers {
            values.append(("pod-image", status.image))
            values.append(("pod-image", status.imageID))
        }
        for status in initContainers {
            values.append(("pod-init-image", status.image))
            values.append(("pod-init-image", status.imageID))
        }
        return make(values)
    }

    /// Selectors of the calling container: its name, image and image ID.
    public static func container(_ status: PodList.ContainerStatus) -> [Selector] {
        make([("container-name", status.name), ("container-image", status.image), ("container-image", status.imageID)])
    }

    /// Drops empty values (a selector must have one) and duplicates, keeping the first occurrence's order.
    private static func make(_ values: [(String, String?)]) -> [Selector] {
        var seen: Set<Selector> = []
        return values.compactMap { kind, value in
            guard let value, !value.isEmpty, let selector = try? Selector(type: "k8s", value: "\(kind):\(value)"),
                seen.insert(selector).inserted
            else { return nil }
            return selector
        }
    }
}
