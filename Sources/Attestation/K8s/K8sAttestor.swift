public import SPIFFE

/// The `k8s` attestor: finds the caller's pod and container from its cgroups (only where the kubelet's layout puts
/// them: ``ContainerLocator``), then looks them up in that pod of the kubelet's pod list.
///
/// A process outside any pod's container is not an error: it gets no `k8s` selectors. A container the kubelet does not
/// list yet (it is still starting) is polled for up to `maximumPollAttempts` lists, one per poll interval;
/// with `disableContainerSelectors` the pod alone answers, which is what sidecars that start before the
/// application's container need.
public struct K8sAttestor: WorkloadAttestor {
    public struct Config: Sendable, Equatable {
        public var maximumPollAttempts: Int
        public var disableContainerSelectors: Bool
        public var procRoot: String
        /// Where the kubelet's hierarchy starts besides the root, from the agent's own cgroup
        /// (``ContainerLocator/ownHierarchyPrefixes(procRoot:)``).
        public var hierarchyPrefixes: [String]

        public init(
            maximumPollAttempts: Int = 60,
            disableContainerSelectors: Bool = false,
            procRoot: String = "/proc",
            hierarchyPrefixes: [String] = []
        ) {
            self.maximumPollAttempts = maximumPollAttempts
            self.disableContainerSelectors = disableContainerSelectors
            self.procRoot = procRoot
            self.hierarchyPrefixes = hierarchyPrefixes
        }
    }

    public let config: Config
    public let fetcher: PodListFetcher
    public var name: String { "k8s" }

    public init(config: Config, fetcher: PodListFetcher) {
        self.config = config
        self.fetcher = fetcher
    }

    public func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        guard
            let location = try ContainerLocator.locate(
                pid: process.pid,
                procRoot: config.procRoot,
                hierarchyPrefixes: config.hierarchyPrefixes
            )
        else { return [] }
        var version: Int? = nil
        for _ in 0..<max(1, config.maximumPollAttempts) {
            let snapshot = try await fetcher.podList(newerThan: version)
            version = snapshot.version
            if let selectors = try selectors(for: location, in: snapshot.list) { return selectors }
        }
        throw AttestationError(
            .podNotFound,
            "\(location) is not in the kubelet's pod list after \(max(1, config.maximumPollAttempts)) attempts"
        )
    }

    /// The selectors `list` gives `location`, or nil when it does not list the container (or, with container
    /// selectors off, the pod).
    func selectors(for location: ContainerLocator.Location, in list: PodList) throws(AttestationError) -> [Selector]? {
        if config.disableContainerSelectors {
            return list.pod(uid: location.podUID).map(K8sSelectors.pod)
        }
        guard let (pod, status) = try list.find(location) else { return nil }
        return K8sSelectors.pod(pod) + K8sSelectors.container(status)
    }
}
