import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// Which file a path or descriptor is, and which version of it: device, inode, size and change time. Two opens of
/// the same unchanged file agree; an exec of another binary, or a write to this one, changes it.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let changeSeconds: Int
    let changeNanoseconds: Int

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        changeSeconds = status.st_ctim.tv_sec
        changeNanoseconds = status.st_ctim.tv_nsec
    }

    /// The identity of the file `path` leads to (following links), or nil when it cannot be examined.
    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        self.init(status)
    }

    /// The identity of an open file.
    init?(descriptor: Int32) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        self.init(status)
    }

    /// Device and inode only: the same file, whatever was written to it since.
    func isSameFile(as other: FileIdentity) -> Bool { device == other.device && inode == other.inode }
}
