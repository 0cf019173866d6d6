public import SPIFFE

/// Why a caller could not be attested. Messages name the process and the file, never secrets.
public typealias AttestationError = CodedError<AttestationErrorCode>

public struct AttestationErrorCode: ErrorCode {
    let name: String

    /// The process is gone, or its PID now belongs to another process.
    public static let processGone = Self(name: "process gone")
    /// The process's real or effective uid or gid differs from what it connected with.
    public static let credentialsChanged = Self(name: "credentials changed")
    /// The process runs another executable than when it connected.
    public static let executableChanged = Self(name: "executable changed")
    /// Reading the facts took longer than allowed (hashing a huge executable).
    public static let timedOut = Self(name: "timed out")
    /// A `/proc` file could not be read or did not have the expected form.
    public static let procUnreadable = Self(name: "proc unreadable")
    /// The workload's executable is larger than the configured limit.
    public static let workloadTooLarge = Self(name: "workload too large")
    /// The cgroups name two different containers or pods; the caller is refused rather than guessed.
    public static let containerConflict = Self(name: "container conflict")
    /// The kubelet could not be reached, refused the agent, or answered with something unusable.
    public static let kubeletUnavailable = Self(name: "kubelet unavailable")
    /// The caller's container never appeared in the kubelet's pod list, or appeared in two pods.
    public static let podNotFound = Self(name: "pod not found")
    /// systemd's manager could not be asked over D-Bus, or answered with something unusable.
    public static let systemdUnavailable = Self(name: "systemd unavailable")
    /// The container runtime's API could not be asked, is not who it should be, or answered with something unusable.
    public static let containerRuntimeUnavailable = Self(name: "container runtime unavailable")

    public var description: String { name }
}
