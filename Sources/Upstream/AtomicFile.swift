public import Foundation
public import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// Writes files so that a reader, or a restart after a crash, sees either the old content or the new, never a mix.
///
/// The bytes go to a fresh temporary file in the same directory, created with the final mode (so a private key is
/// never readable by others, even for an instant), flushed with `fsync`, renamed over the target, and the directory
/// is synced so the rename survives a power loss. On any failure the temporary file is removed and the old file is
/// untouched.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t) throws(UpstreamError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp-\(UInt64.random(in: 0...UInt64.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw failure("cannot create \(temporary)") }
        let ok = writeAll(data, to: descriptor) && fchmod(descriptor, mode) == 0 && fsync(descriptor) == 0
        let closed = close(descriptor) == 0
        guard ok, closed, rename(temporary, path) == 0 else {
            let error = failure("cannot write \(path)")
            unlink(temporary)
            throw error
        }
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Writes every byte of `data` to `descriptor`, retrying short and interrupted writes; false on an error (errno).
    public static func writeAll(_ data: Data, to descriptor: Int32) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            var written = 0
            while written < raw.count {
                let result = Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += result
            }
            return true
        }
    }

    /// Removes the temporary files of writes that a crash interrupted (`<name>.tmp-<n>` in `directory`). Only a
    /// process that owns `directory` calls this, at start-up, before it writes anything there.
    public static func removeLeftovers(in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names {
            guard let marker = name.range(of: ".tmp-", options: .backwards),
                !name[marker.upperBound...].isEmpty, name[marker.upperBound...].allSatisfy(\.isNumber)
            else { continue }
            unlink(directory + "/" + name)
        }
    }

    private static func failure(_ message: String) -> UpstreamError {
        UpstreamError(.storage, "\(message): \(String(cString: strerror(errno)))")
    }
}
