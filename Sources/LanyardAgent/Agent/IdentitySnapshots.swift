import Foundation
import IdentityCache
import Logging
import SPIFFE
import Synchronization

/// Keeps ``IdentitySnapshotFile`` in step with the cache: restores it at start, and stores the state after every
/// rotation pass that changed it (entries, bundles or SVIDs), so a restart serves at once what the agent served.
final class IdentitySnapshots: Sendable {
    let file: IdentitySnapshotFile
    /// The agent identity the snapshot is taken under: the SPIRE Server agent ID in fleet mode, nil standalone.
    private let agentID: @Sendable () -> SPIFFEID?
    private let logger: Logger
    /// The cache generation last stored, so an unchanged state is not written again.
    private let stored = Mutex<UInt64?>(nil)

    init(file: IdentitySnapshotFile, logger: Logger, agentID: @escaping @Sendable () -> SPIFFEID?) {
        self.file = file
        self.logger = logger
        self.agentID = agentID
    }

    /// Loads the stored snapshot into `cache`, if it was taken under `agentID` (the stored agent identity in fleet
    /// mode); returns the number of SVIDs restored (0 with no usable snapshot). A refused snapshot is logged with
    /// its reason and set aside, and the agent starts as it would without one.
    @discardableResult
    func restore(into cache: IdentityCache, at now: Date, agentID: SPIFFEID?) -> Int {
        let snapshot: CacheSnapshot?
        do {
            snapshot = try file.load(agentID: agentID)
        } catch {
            let aside = file.setAside(at: now)
            logger.error(
                "the identity snapshot is refused; starting without it",
                metadata: [LogKey.path: "\(file.path)", LogKey.error: "\(error)", LogKey.movedTo: "\(aside ?? "-")"]
            )
            return 0
        }
        guard let snapshot else { return 0 }
        var restored = 0
        cache.update { state in
            restored = state.restore(snapshot, at: now)
            return true
        }
        stored.withLock { $0 = cache.state.generation }
        logger.notice(
            "serving identities from the snapshot",
            metadata: [
                LogKey.svidsRestored: "\(restored)", LogKey.entries: "\(snapshot.entries.count)",
                LogKey.snapshotTakenAt: "\(snapshot.takenAt)",
            ]
        )
        return restored
    }

    /// Stores `state` if it changed since the last write. A failed write (a full disk) is logged and retried after
    /// the next pass; the agent keeps serving from memory.
    func save(_ state: CacheState, at now: Date) {
        guard stored.withLock({ $0 }) != state.generation, let snapshot = state.snapshot(at: now) else { return }
        do {
            try file.save(snapshot, agentID: agentID())
            stored.withLock { $0 = state.generation }
        } catch {
            logger.warning(
                "cannot store the identity snapshot; a restart now would wait for the upstream",
                metadata: [LogKey.path: "\(file.path)", LogKey.error: "\(error)"]
            )
        }
    }
}
