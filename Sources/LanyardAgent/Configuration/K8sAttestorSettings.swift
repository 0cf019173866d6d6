public import Attestation

/// `[attestors.k8s]`: how to reach the kubelet and how long to wait for a starting container.
public struct K8sAttestorSettings: Sendable {
    public var kubelet: KubeletClient.Config
    public var attestor: K8sAttestor.Config
    /// Between two pod-list requests while a caller's container is not listed yet (`poll_retry_interval`).
    public var pollRetryInterval: Duration
    /// How long a fetched pod list answers new callers without asking the kubelet again (`pod_list_cache_ttl`).
    public var podListCacheTTL: Duration

    /// A fetcher sharing kubelet requests between attestations, and the attestor using it.
    func makeAttestor() -> K8sAttestor {
        let client = KubeletClient(config: kubelet)
        let fetcher = PodListFetcher(maximumAge: podListCacheTTL, minimumSpacing: pollRetryInterval) {
            () async throws(AttestationError) -> PodList in try await client.fetchPodList()
        }
        var config = attestor
        // Where the kubelet's hierarchy sits when the agent itself runs in a pod below a prefix (kind on cgroup v1).
        if config.hierarchyPrefixes.isEmpty {
            config.hierarchyPrefixes = ContainerLocator.ownHierarchyPrefixes(procRoot: config.procRoot)
        }
        return K8sAttestor(config: config, fetcher: fetcher)
    }
}
