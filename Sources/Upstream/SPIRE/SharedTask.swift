/// Work that must never run twice at once (attesting, renewing the agent identity), shared by everyone who asks for
/// it meanwhile: a caller that arrives while it runs waits for that run's result instead of starting another, as
/// `PodListFetcher` shares a kubelet request. The run is cancelled once every caller waiting for it has been.
actor SharedTask<Value: Sendable> {
    private struct Run {
        let task: Task<Value, any Error>
        var waiting = 0
        var cancelled = 0
    }

    private var current: Run?

    /// The result of the run in progress, or of a new run of `work` when none is.
    func value(of work: @escaping @Sendable () async throws -> Value) async throws -> Value {
        var run = current ?? Run(task: Task { try await work() })
        run.waiting += 1
        current = run
        let task = run.task
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            Task { await self.waiterCancelled(task) }
        }
        if current?.task == task { current = nil }
        return try result.get()
    }

    /// A waiter went away: the run stops when nobody is left to want it.
    private func waiterCancelled(_ task: Task<Value, any Error>) {
        guard var run = current, run.task == task else { return }
        run.cancelled += 1
        current = run
        if run.cancelled >= run.waiting { task.cancel() }
    }
}
