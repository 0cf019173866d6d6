public import SPIFFE
import Dispatch
import SPIFFECrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The path and SHA-256 of a process's executable, for `unix:path` and `unix:sha256`, at a bounded cost whatever
/// the caller runs.
///
/// The file is read through `/proc/<pid>/exe`, so the digest is of the binary the process runs even if the path was
/// replaced since. A caller chooses that file, so hashing it is bounded four ways: files over `sizeLimit` are refused
/// before a byte is read; the file is streamed through SHA-256 in 1 MiB pieces (constant memory, however large, and
/// sparse files of many GiB included); the work runs on dispatch threads, at most ``maximumConcurrentHashes`` at a
/// time, never on Swift's cooperative pool that serves every other call; and a caller waits at most `timeLimit`.
/// Digests are cached by the file's identity (device, inode, size, change time), so a binary is hashed once until
/// it changes, and callers asking for the same file at once share one reading.
public final class ExecutableHasher: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Largest executable hashed, in bytes; 0 means no limit (the time limit still applies).
        public var sizeLimit: Int64
        /// How long a caller may wait for a digest, queueing included.
        public var timeLimit: Duration

        public static let defaults = Limits(sizeLimit: 256 << 20, timeLimit: .seconds(30))

        public init(sizeLimit: Int64, timeLimit: Duration) {
            self.sizeLimit = sizeLimit
            self.timeLimit = timeLimit
        }
    }

    public let limits: Limits
    static let cacheCapacity = 512
    static let maximumConcurrentHashes = 2
    static let chunkSize = 1 << 20

    private typealias Waiter = @Sendable (Result<String, AttestationError>) -> Void

    private struct Job {
        let identity: FileIdentity
        let descriptor: Int32
        let deadline: ContinuousClock.Instant
    }

    private struct State {
        var digests: [FileIdentity: String] = [:]
        /// Insertion order, for evicting the oldest digest when the cache is full.
        var order: [FileIdentity] = []
        var waiters: [FileIdentity: [Waiter]] = [:]
        var pending: [Job] = []
        var running = 0
        /// Files hashed so far (for tests: a cached digest is not read again).
        var hashed = 0
    }

    private let state = Mutex(State())

    public init(limits: Limits = .defaults) {
        self.limits = limits
    }

    /// How many files have been read and hashed (not answered from the cache).
    public var filesHashed: Int { state.withLock { $0.hashed } }

    /// The executable's path and lowercase hex SHA-256.
    public func executable(of pid: Int32, procRoot: String = "/proc") async throws(AttestationError) -> (
        path: String, digest: String
    ) {
        let link = "\(procRoot)/\(pid)/exe"
        guard let path = Self.readLink(link) else {
            throw AttestationError(.procUnreadable, "cannot read the executable path of process \(pid)")
        }
        let descriptor = open(link, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw AttestationError(.procUnreadable, "cannot open the executable of process \(pid)")
        }
        guard let identity = FileIdentity(descriptor: descriptor) else {
            close(descriptor)
            throw AttestationError(.procUnreadable, "cannot examine the executable of process \(pid)")
        }
        if limits.sizeLimit > 0 && identity.size > limits.sizeLimit {
            close(descriptor)
            throw AttestationError(
                .workloadTooLarge,
                "executable \(path) is \(identity.size) bytes, over workload_size_limit \(limits.sizeLimit)"
            )
        }
        let deadline = ContinuousClock.now + limits.timeLimit
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<String, AttestationError>, Never>) in
            enqueue(identity: identity, descriptor: descriptor, deadline: deadline) { continuation.resume(returning: $0) }
        }
        switch result {
        case .success(let digest): return (path, digest)
        case .failure(let error):
            throw AttestationError(error.code, "\(path): \(error.message)")
        }
    }

    /// Answers from the cache, joins a reading of the same file in progress, or queues a new one.
    private func enqueue(
        identity: FileIdentity,
        descriptor: Int32,
        deadline: ContinuousClock.Instant,
        waiter: @escaping Waiter
    ) {
        enum Next {
            case answer(String)
            case joined
            case queued
            case start(Job)
        }
        let next: Next = state.withLock { state in
            if let digest = state.digests[identity] { return .answer(digest) }
            if state.waiters[identity] != nil {
                state.waiters[identity]!.append(waiter)
                return .joined
            }
            state.waiters[identity] = [waiter]
            let job = Job(identity: identity, descriptor: descriptor, deadline: deadline)
            guard state.running < Self.maximumConcurrentHashes else {
                state.pending.append(job)
                return .queued
            }
            state.running += 1
            return .start(job)
        }
        switch next {
        case .answer(let digest):
            close(descriptor)
            waiter(.success(digest))
        case .joined:
            close(descriptor)
        case .queued:
            break
        case .start(let job):
            run(job)
        }
    }

    private func run(_ job: Job) {
        DispatchQueue.global(qos: .utility).async { [self] in
            let result = Self.hash(descriptor: job.descriptor, deadline: job.deadline)
            close(job.descriptor)
            let (waiters, next): ([Waiter], Job?) = state.withLock { state in
                if case .success(let digest) = result {
                    state.hashed += 1
                    state.digests[job.identity] = digest
                    state.order.append(job.identity)
                    if state.order.count > Self.cacheCapacity {
                        state.digests[state.order.removeFirst()] = nil
                    }
                }
                let waiters = state.waiters.removeValue(forKey: job.identity) ?? []
                guard !state.pending.isEmpty else {
                    state.running -= 1
                    return (waiters, nil)
                }
                return (waiters, state.pending.removeFirst())
            }
            for waiter in waiters { waiter(result) }
            if let next { run(next) }
        }
    }

    /// Streams the file through SHA-256, giving up at `deadline`.
    private static func hash(descriptor: Int32, deadline: ContinuousClock.Instant) -> Result<String, AttestationError>
    {
        let stream = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var offset = 0
        while true {
            guard ContinuousClock.now < deadline else {
                return .failure(AttestationError(.timedOut, "hashing took longer than allowed"))
            }
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                return .failure(AttestationError(.procUnreadable, "read failed: \(String(cString: strerror(errno)))"))
            }
            if count == 0 { break }
            buffer.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            offset += count
        }
        let hex = Array("0123456789abcdef".utf8)
        return .success(String(decoding: stream.finish().flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0xF)]] }, as: UTF8.self))
    }

    /// The target of a `/proc/<pid>/exe` link.
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
