#if canImport(Glibc)
    import Glibc
#endif

/// The agent's file descriptor budget. systemd starts services with a soft limit of 1024 (hard 524288), which a few
/// local users holding idle connections could exhaust; the agent raises its soft limit to the hard one at start and
/// keeps every caller together below it (``connectionLimit(configured:)``).
enum DescriptorLimit {
    /// Descriptors kept for the agent's own files, kubelet and SPIRE Server connections, and the health listener.
    static let reserved = 128

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force afterwards.
    @discardableResult
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// Descriptors each caller connection holds: its socket and the pidfd that pins its process.
    static let perConnection = 2

    /// `workload_api.max_connections` when set, else what the soft limit holds after ``reserved`` (never below 64).
    static func connectionLimit(configured: Int, softLimit: Int) -> Int {
        configured > 0 ? configured : max(64, (softLimit - reserved) / perConnection)
    }
}
