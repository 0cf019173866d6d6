import CSystemd

/// Returns memory freed after a burst (priming thousands of SVIDs) to the system. glibc keeps freed heap in its
/// arenas otherwise, so a node's resident memory would stay at its startup peak.
enum MemoryTrimmer {
    static func trim() {
        _ = lanyard_malloc_trim()
    }
}
