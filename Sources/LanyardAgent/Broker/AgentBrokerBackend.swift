import Attestation
import Endpoints
import Foundation
import SPIFFE

/// Resolves Broker API references for the agent: a PID is pinned and attested exactly as a Workload API caller (same
/// attestors, same pin), and a pod is found in the kubelet's pod list (only pods on this node) and given its pod
/// selectors.
struct AgentBrokerBackend: BrokerBackend {
    let backend: WorkloadBackend
    let attestors: AttestorSet

    var workloads: any WorkloadAPIBackend { backend }

    func resolve(_ target: WorkloadReferenceTarget) async throws -> AttestedCaller {
        switch target {
        case .pid(let pid):
            let credentials: WorkloadProcess
            do {
                credentials = try UnixAttestor.process(pid: pid, procRoot: backend.procRoot)
            } catch {
                throw BrokerReferenceError(.notFound, "no process \(pid) on this node")
            }
            let pin = backend.pin(credentials, process: .pidfdUnsupported)
            do {
                return try await backend.attest(ConnectedCaller(credentials: credentials, pin: pin))
            } catch let error as WorkloadAPIError where error.code == .callerGone || error.code == .callerChanged {
                throw BrokerReferenceError(.notFound, "process \(pid) exited or changed while it was attested")
            }
        case .pod:
            let pod = try await findPod(target)
            let selectors = Set(K8sSelectors.pod(pod))
            await backend.instantiateTemplates?(selectors)
            return AttestedCaller(
                credentials: WorkloadProcess(pid: 0, uid: UInt32.max, gid: UInt32.max),
                selectors: selectors,
                pin: PodPin()
            )
        }
    }

    func isPresent(_ target: WorkloadReferenceTarget, caller: AttestedCaller) async -> Bool {
        switch target {
        case .pid: (try? caller.pin.verify()) != nil
        case .pod: (try? await findPod(target)) != nil
        }
    }

    /// The pod `target` names in the kubelet's current list; with both a UID and a name, the named pod must have
    /// that UID.
    private func findPod(_ target: WorkloadReferenceTarget) async throws -> PodList.Pod {
        guard case .pod(let uid, let namespace, let name) = target else {
            throw BrokerReferenceError(.invalid, "not a pod reference")
        }
        guard let k8s = attestors.current.compactMap({ $0 as? K8sAttestor }).first else {
            throw BrokerReferenceError(.invalid, "pod references need the k8s attestor ([attestors.k8s])")
        }
        let list = try await k8s.fetcher.podList(newerThan: nil).list
        if let namespace, let name {
            guard let pod = list.pods.first(where: { $0.metadata.namespace == namespace && $0.metadata.name == name })
            else { throw BrokerReferenceError(.notFound, "no pod \(namespace)/\(name) on this node") }
            if let uid, pod.metadata.uid != uid {
                throw BrokerReferenceError(
                    .notFound,
                    "pod \(namespace)/\(name) on this node is not the pod with uid \(uid)"
                )
            }
            return pod
        }
        guard let uid, let pod = list.pod(uid: uid) else {
            throw BrokerReferenceError(.notFound, "no pod with uid \(uid ?? "") on this node")
        }
        return pod
    }
}

/// A pod reference has no process to pin: its presence is checked against the pod list instead.
private struct PodPin: CallerPin {
    func verify() throws {}
}
