public import SPIFFE
public import Timing

/// Shares kubelet requests between attestations, so an attestation storm does not become a kubelet storm.
///
/// Callers ask for a pod list, optionally one newer than a version they already looked at (because their container
/// was not in it). Concurrent callers wait on the same request; a list younger than `maximumAge` answers new
/// callers without a request; and request starts are spaced at least `minimumSpacing` apart, which is also the
/// poll interval of callers waiting for their container to appear.
public actor PodListFetcher {
    /// A pod list and when it was fetched; versions grow by one per successful fetch.
    public struct Snapshot: Sendable {
        public let version: Int
        public let list: PodList
        /// The clock's uptime at the fetch.
        public let fetchedAt: Duration
    }

    private let fetch: @Sendable () async throws(AttestationError) -> PodList
    private let maximumAge: Duration
    private let minimumSpacing: Duration
    private var latest: Snapshot?
    private var inFlight: Task<Snapshot, any Error>?
    private var lastRequestStart: Duration?
    private let clock: any AgentClock
    /// Requests made so far, for metrics and tests.
    public private(set) var requestCount = 0

    public init(
        maximumAge: Duration,
        minimumSpacing: Duration,
        clock: any AgentClock = SystemClock(),
        fetch: @escaping @Sendable () async throws(AttestationError) -> PodList
    ) {
        self.fetch = fetch
        self.maximumAge = maximumAge
        self.minimumSpacing = minimumSpacing
        self.clock = clock
    }

    /// A pod list newer than `version`, or, without a version, any list younger than the maximum age.
    public func podList(newerThan version: Int? = nil) async throws(AttestationError) -> Snapshot {
        if let latest, isUsable(latest, newerThan: version) { return latest }
        let task = inFlight ?? startRequest()
        do {
            let snapshot = try await task.value
            finished(task, with: snapshot)
            return snapshot
        } catch {
            finished(task, with: nil)
            throw (error as? AttestationError)
                ?? AttestationError(.kubeletUnavailable, "the kubelet request was cancelled")
        }
    }

    private func isUsable(_ snapshot: Snapshot, newerThan version: Int?) -> Bool {
        if let version { return snapshot.version > version }
        return clock.uptime - snapshot.fetchedAt < maximumAge
    }

    private func startRequest() -> Task<Snapshot, any Error> {
        let now = clock.uptime
        let start = lastRequestStart.map { max(now, $0 + minimumSpacing) } ?? now
        lastRequestStart = start
        requestCount += 1
        let version = (latest?.version ?? 0) + 1
        let fetch = fetch
        let clock = clock
        // One request shared by every waiter; a waiter that goes away does not cancel it for the others, and the
        // client's own timeout bounds it.
        let task = Task<Snapshot, any Error> {
            if start > now { try await clock.sleep(for: start - now) }
            let list = try await fetch()
            return Snapshot(version: version, list: list, fetchedAt: clock.uptime)
        }
        inFlight = task
        return task
    }

    private func finished(_ task: Task<Snapshot, any Error>, with snapshot: Snapshot?) {
        if inFlight == task { inFlight = nil }
        if let snapshot, snapshot.version > latest?.version ?? 0 { latest = snapshot }
    }
}
