import Foundation
import LanyardTestSupport
import SPIFFE
import Testing

@testable import Attestation

@Suite("Pod list decoding and k8s selectors")
struct PodListTests {
    static let cid = String(repeating: "a1", count: 32)
    static let initCID = String(repeating: "b2", count: 32)

    static func shopPod() -> FakePod {
        FakePod(
            name: "api-5f7d",
            namespace: "shop",
            uid: "2c48913c-b29f-11e7-9350-020968147796",
            serviceAccount: "api",
            nodeName: "node-7",
            labels: ["app": "api", "version": "v2"],
            owner: ("ReplicaSet", "api-5f7", "0a0b0c0d-0000-1111-2222-333344445555"),
            containers: [
                .init(
                    name: "api",
                    image: "registry.example/api:2.1",
                    imageID: "registry.example/api@sha256:1111",
                    containerID: "containerd://\(cid)"
                ),
                .init(
                    name: "istio-proxy",
                    image: "istio/proxyv2:1.24",
                    imageID: "istio/proxyv2@sha256:2222",
                    containerID: "containerd://\(String(repeating: "c3", count: 32))"
                ),
            ],
            initContainers: [
                .init(
                    name: "istio-init",
                    image: "istio/proxyv2:1.24",
                    imageID: "istio/proxyv2@sha256:2222",
                    containerID: "containerd://\(initCID)"
                )
            ],
            padding: 4000
        )
    }

    @Test("the calling container gets SPIRE's k8s selectors")
    func selectors() throws {
        let list = try PodList(json: FakePod.podListJSON([Self.shopPod()] + FakePod.generated(count: 5)))
        #expect(list.pods.count == 6)
        let attestor = K8sAttestor(
            config: .init(),
            fetcher: PodListFetcher(maximumAge: .zero, minimumSpacing: .zero) { list }
        )
        let found = try #require(
            try attestor.selectors(
                for: .init(podUID: "2c48913c-b29f-11e7-9350-020968147796", containerID: Self.cid),
                in: list
            )
        )
        let expected = [
            "ns:shop", "sa:api", "node-name:node-7", "pod-uid:2c48913c-b29f-11e7-9350-020968147796",
            "pod-name:api-5f7d",
            "pod-label:app:api", "pod-label:version:v2", "pod-owner:ReplicaSet:api-5f7",
            "pod-owner-uid:ReplicaSet:0a0b0c0d-0000-1111-2222-333344445555", "pod-image-count:2",
            "pod-init-image-count:1",
            "pod-image:registry.example/api:2.1", "pod-image:registry.example/api@sha256:1111",
            "pod-image:istio/proxyv2:1.24", "pod-image:istio/proxyv2@sha256:2222",
            "pod-init-image:istio/proxyv2:1.24", "pod-init-image:istio/proxyv2@sha256:2222",
            "container-name:api", "container-image:registry.example/api:2.1",
            "container-image:registry.example/api@sha256:1111",
        ].map { try! Selector(type: "k8s", value: $0) }
        #expect(found == expected)

        // Init containers are found too.
        let initSelectors = try #require(
            try attestor.selectors(for: .init(podUID: Self.shopPod().uid, containerID: Self.initCID), in: list)
        )
        #expect(initSelectors.contains(try Selector("k8s:container-name:istio-init")))
        // The wrong pod UID does not match the container.
        #expect(
            try attestor.selectors(
                for: .init(podUID: "11111111-2222-3333-4444-555555555555", containerID: Self.cid),
                in: list
            ) == nil
        )
    }

    @Test("disable_container_selectors answers from the pod alone, even before the container is listed")
    func podOnly() throws {
        var pod = Self.shopPod()
        pod.containers[0].containerID = ""
        let list = try PodList(json: FakePod.podListJSON([pod]))
        let fetcher = PodListFetcher(maximumAge: .zero, minimumSpacing: .zero) { list }
        let location = ContainerLocator.Location(podUID: pod.uid, containerID: Self.cid)
        #expect(try K8sAttestor(config: .init(), fetcher: fetcher).selectors(for: location, in: list) == nil)
        let podOnly = try #require(
            try K8sAttestor(config: .init(disableContainerSelectors: true), fetcher: fetcher).selectors(
                for: location,
                in: list
            )
        )
        #expect(podOnly.contains(try Selector("k8s:sa:api")))
        #expect(!podOnly.contains { $0.value.hasPrefix("container-") })
    }

    @Test("a container is looked up only in the pod its cgroup names; a pod UID listed twice is an error")
    func onlyTheNamedPod() throws {
        var other = Self.shopPod()
        other.uid = "99999999-2222-3333-4444-555555555555"
        let list = try PodList(json: FakePod.podListJSON([Self.shopPod(), other]))
        #expect(try list.find(.init(podUID: other.uid, containerID: Self.cid))?.0.metadata.uid == other.uid)
        #expect(try list.find(.init(podUID: "11111111-2222-3333-4444-555555555555", containerID: Self.cid)) == nil)
        let twice = try PodList(json: FakePod.podListJSON([Self.shopPod(), Self.shopPod()]))
        #expect(throws: AttestationError(.podNotFound, "")) {
            try twice.find(.init(podUID: Self.shopPod().uid, containerID: Self.cid))
        }
    }

    @Test(
        "malformed pod lists are refused with what is wrong",
        arguments: [
            ("", "malformed JSON"),
            ("{\"kind\":\"PodList\",\"items\":[{\"metadata\":7}]}", "items[0].metadata"),
            ("{\"kind\":\"Status\",\"items\":[]}", "instead of a PodList"),
            ("[1,2,3]", "not a"),
            (
                "{\"items\":[{\"metadata\":{\"uid\":\"u\"},\"status\":{\"containerStatuses\":[{\"image\":\"x\"}]}}]}",
                "lacks \"name\""
            ),
            ("{\"items\":[", "malformed"),
            ("{\"items\":[{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"a\" \"b\"}}}]}", "expected ':'"),
            ("{\"items\":[{\"spec\":{\"containers\":[1 2]}}]}", "expected ',' or ']'"),
            ("{\"items\":[{\"spec\":{\"x\":{]}}]}", "expected a key"),
            ("{\"items\":[{\"metadata\":{\"name\":\"a\\q\"}}]}", "invalid escape"),
            ("{\"items\":[{\"metadata\":{\"name\":\"\\ud800\"}}]}", "unpaired surrogate"),
            ("{\"items\":[]} trailing", "data after the document"),
            ("{\"items\":[{\"metadata\":{\"labels\":{\"app\":7}}}]}", "items[0].metadata.labels.app is not a string"),
            (
                "{\"items\":[{\"spec\":{\"deep\":" + String(repeating: "[", count: 300) + "}}]}",
                "nested deeper than 256"
            ),
        ]
    )
    func malformed(_ json: String, _ fragment: String) {
        do {
            _ = try PodList(json: Data(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .kubeletUnavailable)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test("escapes, unicode and skipped members of every JSON kind are read as a JSON parser would")
    func jsonDetails() throws {
        let json = #"""
            {"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"caf\u00e9-\ud83d\ude80","namespace":"a\/b\n","uid":"u-1","labels":{"k\"q":"v\\w"},"annotations":{"n":null,"t":true,"f":false,"x":[1,-2.5e3,{"y":[]},{}]}},"spec":{"serviceAccountName":null,"nodeName":"n1"},"status":{"containerStatuses":null,"initContainerStatuses":[{"name":"init","image":"i","containerID":"containerd://abc","ready":true}]}}]}
            """#
        let list = try PodList(json: Data(json.utf8))
        let pod = try #require(list.pods.first)
        #expect(pod.metadata.name == "café-🚀")
        #expect(pod.metadata.namespace == "a/b\n")
        #expect(pod.metadata.labels == ["k\"q": "v\\w"])
        #expect(pod.spec?.serviceAccountName == nil && pod.spec?.nodeName == "n1")
        #expect((pod.status?.containerStatuses ?? []).isEmpty)
        #expect(pod.status?.initContainerStatuses?.first?.containerID == "containerd://abc")
    }

    @Test("random bytes and mutations of a real list never crash the reader")
    func fuzzish() {
        var json = [UInt8](FakePod.podListJSON(FakePod.generated(count: 3, bytesPerPod: 600)))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var mutated = json
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(
                    in: 0...255,
                    using: &generator
                )
            }
            _ = try? PodList(json: Data(mutated))
        }
        for _ in 0..<500 {
            json = (0..<Int.random(in: 0...200, using: &generator)).map { _ in
                Array("{}[]\",:0123456789.-eE\\untrufalse ".utf8).randomElement()!
            }
            _ = try? PodList(json: Data(json))
        }
    }

    @Test("a null item list is an empty node, and pods without a UID are skipped")
    func emptyLists() throws {
        #expect(try PodList(json: Data("{\"kind\":\"PodList\",\"items\":null}".utf8)).pods.isEmpty)
        #expect(try PodList(json: Data("{\"items\":[{\"metadata\":{\"name\":\"x\"}}]}".utf8)).pods.isEmpty)
    }

    @Test("every truncation of a real pod list is refused, never a crash")
    func truncations() throws {
        let json = FakePod.podListJSON([Self.shopPod()])
        var refused = 0
        for cut in stride(from: 0, to: json.count, by: 7) where (try? PodList(json: json.prefix(cut))) == nil {
            refused += 1
        }
        #expect(refused == (json.count + 6) / 7)
    }
}
