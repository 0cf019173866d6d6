/// Why a caller could not be attested. Messages name the process and the file, never secrets.
public struct AttestationError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String

        /// The process is gone, or its PID now belongs to another process.
        public static let processGone = Code(name: "process gone")
        /// The process's real or effective uid or gid differs from what it connected with.
        public static let credentialsChanged = Code(name: "credentials changed")
        /// The process runs another executable than when it connected.
        public static let executableChanged = Code(name: "executable changed")
        /// Reading the facts took longer than allowed (hashing a huge executable).
        public static let timedOut = Code(name: "timed out")
        /// A `/proc` file could not be read or did not have the expected form.
        public static let procUnreadable = Code(name: "proc unreadable")
        /// The workload's executable is larger than the configured limit.
        public static let workloadTooLarge = Code(name: "workload too large")
        /// The cgroups name two different containers or pods; the caller is refused rather than guessed.
        public static let containerConflict = Code(name: "container conflict")
        /// The kubelet could not be reached, refused the agent, or answered with something unusable.
        public static let kubeletUnavailable = Code(name: "kubelet unavailable")
        /// The caller's container never appeared in the kubelet's pod list, or appeared in two pods.
        public static let podNotFound = Code(name: "pod not found")

        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
