public import Attestation
import Timing

/// `[attestors.k8s]`: how to reach the kubelet and how long to wait for a starting container.
public struct K8sAttestorSettings: Sendable, Equatable {
    public var kubelet: KubeletClient.Config
    public var attestor: K8sAttestor.Config
    /// Between two pod-list requests while a caller's container is not listed yet (`poll_retry_interval`).
    public var pollRetryInterval: Duration
    /// How long a fetched pod list answers new callers without asking the kubelet again (`pod_list_cache_ttl`).
    public var podListCacheTTL: Duration

    /// `[attestors.k8s]`, or nil when it is not enabled (its keys are checked either way).
    static func read(_ section: SectionReader) -> K8sAttestorSettings? {
        let defaults = KubeletClient.Config()
        var kubelet = defaults
        kubelet.host = section.string("kubelet_host", default: defaults.host)
        if let nodeName = section.string("node_name"), !nodeName.isEmpty { kubelet.host = nodeName }
        if kubelet.host.isEmpty { section.problem("kubelet_host", "cannot be empty") }
        kubelet.securePort = section.integer(
            "kubelet_secure_port",
            in: 0...65535,
            default: defaults.securePort,
            describe: "must be a port number"
        )
        kubelet.readOnlyPort = section.integer(
            "kubelet_read_only_port",
            in: 0...65535,
            default: defaults.readOnlyPort,
            describe: "must be a port number"
        )
        kubelet.tokenPath = section.absolutePath("token_path", default: defaults.tokenPath) ?? defaults.tokenPath
        kubelet.caPath = section.absolutePath("kubelet_ca_path", default: defaults.caPath) ?? defaults.caPath
        kubelet.skipVerification = section.bool("skip_kubelet_verification", default: false)
        kubelet.requestTimeout = section.duration("kubelet_request_timeout", default: defaults.requestTimeout)
        kubelet.certificatePath = section.absolutePath("certificate_path")
        kubelet.privateKeyPath = section.absolutePath("private_key_path")
        kubelet.anonymous = section.bool("use_anonymous_authentication", default: false)
        if (kubelet.certificatePath == nil) != (kubelet.privateKeyPath == nil) {
            section.problem(
                kubelet.certificatePath == nil ? "certificate_path" : "private_key_path",
                "certificate_path and private_key_path go together: set both, or neither"
            )
        }
        if kubelet.anonymous && kubelet.certificatePath != nil {
            section.problem("use_anonymous_authentication", "cannot be combined with a client certificate")
        }
        var attestor = K8sAttestor.Config()
        attestor.maximumPollAttempts = section.integer("max_poll_attempts", in: 1...10_000, default: 60)
        attestor.disableContainerSelectors = section.bool("disable_container_selectors", default: false)
        let interval = section.duration("poll_retry_interval", default: .milliseconds(500))
        let cacheTTL = section.duration("pod_list_cache_ttl", default: .seconds(2))
        guard section.bool("enabled", default: false) else { return nil }
        return K8sAttestorSettings(
            kubelet: kubelet,
            attestor: attestor,
            pollRetryInterval: interval,
            podListCacheTTL: cacheTTL
        )
    }

    /// A fetcher sharing kubelet requests between attestations, and the attestor using it.
    func makeAttestor(clock: any AgentClock) -> K8sAttestor {
        let client = KubeletClient(config: kubelet)
        let fetcher = PodListFetcher(maximumAge: podListCacheTTL, minimumSpacing: pollRetryInterval, clock: clock) {
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
