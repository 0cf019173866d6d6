public import Foundation
import Upstream

#if canImport(Glibc)
    import Glibc
#endif

/// A directory of files that change together, as Kubernetes' atomic writer keeps projected volumes.
///
/// Every set of files is written complete into a new hidden version directory (`..v-<n>`), each file created with its
/// final mode and owner, synced, then published by replacing one symlink, `..data`, with a rename — the only step a
/// reader can observe, and it is atomic. The names operators configure (`svid.pem`, …) are symlinks through
/// `..data`, made once. So at every instant each name resolves to a complete file, and all names resolve into the same
/// version; a reader that must read several files as one set resolves `..data` once and reads them from there.
/// The version before the current one is kept, so a reader that resolved it just before a swap can finish. A write
/// that a crash interrupted leaves an unpublished version directory, removed on the next write; the published set
/// is the previous complete one.
public final class CertificateDirectory: Sendable {
    /// One file of a set: its content, mode and path below the directory (`svid.pem`, `federated/example.com.pem`).
    public struct File: Sendable, Equatable {
        public var name: String
        public var content: Data
        public var mode: mode_t

        public init(name: String, content: Data, mode: mode_t) {
            self.name = name
            self.content = content
            self.mode = mode
        }
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let description: String
    }

    public let path: String
    /// Owner and group for every file and version directory; nil leaves the writer's own.
    let owner: uid_t?
    let group: gid_t?

    static let dataLink = "..data"
    static let versionPrefix = "..v-"

    public init(path: String, owner: uid_t? = nil, group: gid_t? = nil) {
        self.path = path
        self.owner = owner
        self.group = group
    }

    /// The version directory `..data` points to now, if any.
    public var currentVersion: String? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + Self.dataLink))
    }

    /// Writes `files` as the new complete set and publishes it.
    public func publish(_ files: [File]) throws(WriteError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw WriteError(description: "cert_dir \(path) does not exist or is not a directory")
        }
        let current = currentVersion
        removeVersions(keeping: [current].compactMap { $0 })
        let version = Self.versionPrefix + Self.versionStamp()
        let versionPath = path + "/" + version
        guard mkdir(versionPath, 0o755) == 0 else { throw failure("cannot create \(versionPath)") }
        do throws(WriteError) {
            try applyOwnership(versionPath, mode: 0o755)
            for file in files {
                let components = file.name.split(separator: "/")
                var directory = versionPath
                for component in components.dropLast() {
                    directory += "/" + component
                    if mkdir(directory, 0o755) != 0 && errno != EEXIST {
                        throw failure("cannot create \(directory)")
                    }
                    try applyOwnership(directory, mode: 0o755)
                }
                try write(file.content, to: versionPath + "/" + file.name, mode: file.mode)
            }
            try syncDirectory(versionPath)
            // Publish: a new link beside `..data`, renamed over it.
            let temporaryLink = path + "/..data.tmp-\(UInt64.random(in: 0...UInt64.max))"
            guard symlink(version, temporaryLink) == 0 else { throw failure("cannot create \(temporaryLink)") }
            guard rename(temporaryLink, path + "/" + Self.dataLink) == 0 else {
                let error = failure("cannot publish \(version)")
                unlink(temporaryLink)
                throw error
            }
        } catch {
            removeTree(versionPath)
            throw error
        }
        for top in Set(files.map { String($0.name.split(separator: "/")[0]) }) { try link(top) }
        try syncDirectory(path)
        removeVersions(keeping: [version] + [current].compactMap { $0 })
    }

    /// Makes `name` a symlink through `..data` (once; a regular file left by another tool is replaced atomically).
    private func link(_ name: String) throws(WriteError) {
        let target = Self.dataLink + "/" + name
        let full = path + "/" + name
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) == target { return }
        let temporary = full + ".tmp-\(UInt64.random(in: 0...UInt64.max))"
        guard symlink(target, temporary) == 0, rename(temporary, full) == 0 else {
            let error = failure("cannot link \(full)")
            unlink(temporary)
            throw error
        }
    }

    private func write(_ data: Data, to file: String, mode: mode_t) throws(WriteError) {
        let descriptor = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw failure("cannot create \(file)") }
        defer { close(descriptor) }
        guard AtomicFile.writeAll(data, to: descriptor) else { throw failure("cannot write \(file)") }
        // The mode exactly as configured, whatever the umask; the owner before anyone else can read it.
        if owner != nil || group != nil, fchown(descriptor, owner ?? uid_t.max, group ?? gid_t.max) != 0 {
            throw failure("cannot set the owner of \(file)")
        }
        guard fchmod(descriptor, mode) == 0, fsync(descriptor) == 0 else { throw failure("cannot sync \(file)") }
    }

    private func applyOwnership(_ directory: String, mode: mode_t) throws(WriteError) {
        guard owner != nil || group != nil else { return }
        guard chown(directory, owner ?? uid_t.max, group ?? gid_t.max) == 0, chmod(directory, mode) == 0 else {
            throw failure("cannot set the owner of \(directory)")
        }
    }

    private func syncDirectory(_ directory: String) throws(WriteError) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open \(directory)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failure("cannot sync \(directory)") }
    }

    /// Removes version directories other than `kept`, and links a crash left behind.
    private func removeVersions(keeping kept: [String]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for name in names {
            if name.hasPrefix(Self.versionPrefix), !kept.contains(name) {
                removeTree(path + "/" + name)
            } else if name.hasPrefix("..data.tmp-") || (name.contains(".tmp-") && isSymlink(path + "/" + name)) {
                unlink(path + "/" + name)
            }
        }
    }

    private func isSymlink(_ file: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: file))?[.type] as? FileAttributeType == .typeSymbolicLink
    }

    private func removeTree(_ directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A name that sorts in write order and never repeats: the time in microseconds and a random suffix.
    private static func versionStamp() -> String {
        String(format: "%.6f-%04x", Date().timeIntervalSince1970, UInt16.random(in: 0...UInt16.max))
    }

    private func failure(_ message: String) -> WriteError {
        WriteError(description: "\(message): \(String(cString: strerror(errno)))")
    }
}
