import Attestation
import Endpoints
import Foundation
import IdentityCache
import LanyardTestSupport
import Logging
import SPIFFE
import SPIFFECrypto
import Testing

@testable import LanyardAgent

/// An attestor that lets its caller die mid-attestation, as a process that exits (and whose PID could be
/// recycled) while the agent is still looking at it.
struct KillingAttestor: WorkloadAttestor {
    let victim: ChildProcess
    var name: String { "killing" }

    func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        victim.signal(SIGKILL)
        await victim.waitUntilExit()
        return [try Selector("unix:uid:0")]
    }
}

struct FailingAttestor: WorkloadAttestor {
    var name: String { "failing" }
    func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        throw AttestationError(.procUnreadable, "cannot read")
    }
}

struct NoUpstream: IdentityUpstream {
    func state(at now: Date) async throws -> UpstreamState { throw CryptoError(.issuanceRefused, "none") }
    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate] { [] }
    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID {
        throw CryptoError(.issuanceRefused, "none")
    }
}

@Suite("Workload backend: caller pinning and attestor failures", .serialized, .timeLimit(.minutes(5)))
struct WorkloadBackendTests {
    func backend(_ attestors: [any WorkloadAttestor]) throws -> WorkloadBackend {
        WorkloadBackend(
            cache: IdentityCache(),
            attestorSet: AttestorSet(attestors),
            upstream: NoUpstream(),
            trustDomain: try TrustDomain("example.org"),
            logger: Logger(label: "test"),
            procRoot: "/proc",
            now: Date.init
        )
    }

    func sleeper() async throws -> ChildProcess {
        try await ChildProcess.start(["/bin/sleep", "30"])
    }

    /// The caller of a connection `credentials` describes, pinned as the endpoints pin it at accept.
    func connected(_ backend: WorkloadBackend, _ credentials: WorkloadProcess) -> ConnectedCaller {
        ConnectedCaller(credentials: credentials, pin: backend.pin(credentials, process: .pidfdUnsupported))
    }

    @Test("a caller that exits during attestation is refused as gone, never given the selectors")
    func callerExitsDuringAttestation() async throws {
        let child = try await sleeper()
        let backend = try backend([KillingAttestor(victim: child)])
        let caller = connected(backend, WorkloadProcess(pid: child.pid, uid: getuid(), gid: getgid()))
        await #expect(throws: WorkloadAPIError(.callerGone, "caller process is gone")) {
            try await backend.attest(caller)
        }
    }

    @Test("a caller that is already gone is refused before attestation")
    func callerAlreadyGone() async throws {
        let child = try await sleeper()
        child.signal(SIGKILL)
        await child.waitUntilExit()
        let backend = try backend([UnixAttestor()])
        let caller = connected(backend, WorkloadProcess(pid: child.pid, uid: getuid(), gid: getgid()))
        await #expect(throws: WorkloadAPIError(.callerGone, "caller process is gone")) {
            try await backend.attest(caller)
        }
    }

    @Test(
        "a caller whose ids differ from the connection's is refused as changed, and unix selectors are the connection's"
    )
    func credentialsDiffer() async throws {
        let backend = try backend([UnixAttestor()])
        let other = connected(backend, WorkloadProcess(pid: getpid(), uid: getuid() &+ 1, gid: getgid()))
        await #expect(
            throws: WorkloadAPIError(.callerChanged, "caller credentials changed since it connected; reconnect")
        ) {
            try await backend.attest(other)
        }
        let me = connected(backend, WorkloadProcess(pid: getpid(), uid: getuid(), gid: getgid()))
        let caller = try await backend.attest(me)
        #expect(caller.selectors.contains(try Selector("unix:uid:\(getuid())")))
        #expect(caller.selectors.contains(try Selector("unix:gid:\(getgid())")))
    }

    @Test("any attestor failing fails the attestation: a partial selector set would misreport the caller")
    func attestorFailures() async throws {
        let me = WorkloadProcess(pid: getpid(), uid: getuid(), gid: getgid())
        for attestors in [[FailingAttestor()], [FailingAttestor(), UnixAttestor()]] as [[any WorkloadAttestor]] {
            let backend = try backend(attestors)
            await #expect(throws: WorkloadAPIError(.attestationFailed, "workload attestation failed")) {
                try await backend.attest(connected(backend, me))
            }
        }
        let unix = try backend([UnixAttestor()])
        let caller = try await unix.attest(connected(unix, me))
        #expect(caller.selectors.contains(try Selector("unix:uid:\(geteuid())")))
    }
}
