/// Log metadata keys, spelled once for every module: operators filter and alert on them, so one thing has one name
/// (dotted for a field of a thing: `caller.pid`, `svid.expires_at`).
package enum LogKey {
    package static let error = "error"
    package static let config = "config"
    package static let problems = "problems"
    package static let restartKeys = "keys"

    package static let spiffeID = "spiffe.id"
    package static let trustDomain = "trust_domain"
    package static let entryID = "entry.id"
    package static let entries = "entries"
    package static let selectors = "selectors"
    package static let attestorName = "attestor.name"
    package static let reattestable = "reattestable"
    package static let dataDirectory = "data_dir"
    package static let path = "path"
    package static let movedTo = "moved_to"
    package static let snapshotTakenAt = "snapshot.taken_at"
    package static let bundleSequence = "bundle.sequence"

    package static let svidSerial = "svid.serial"
    package static let svidExpiresAt = "svid.expires_at"
    package static let svidRenewAt = "svid.renew_at"
    package static let svidsMinted = "svids.minted"
    package static let svidsRestored = "svids.restored"
    package static let count = "count"

    package static let callerPID = "caller.pid"
    package static let callerUID = "caller.uid"
    package static let limit = "limit"
    package static let setting = "setting"
    package static let descriptors = "descriptors"
    package static let maxConnections = "workload_api.max_connections"
    package static let maxConnectionsPerCaller = "workload_api.max_connections_per_caller"
    package static let refusalsSuppressed = "refusals.suppressed"

    package static let socketPath = "socket.path"
    package static let serverAddress = "server.address"
    package static let healthListen = "health.listen"

    package static let sdsVersion = "sds.version"
    package static let sdsError = "sds.error"
    package static let nacksSuppressed = "nacks.suppressed"
}
