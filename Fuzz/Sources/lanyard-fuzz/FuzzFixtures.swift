import Foundation
import SPIFFE
import SPIFFECrypto

/// What the certificate and token targets verify against: a trust bundle (a CA certificate and a JWT public key,
/// no private keys) and the moment of verification, both committed under `Fuzz/fixtures` so the committed corpus
/// keeps reaching the deep paths (chain verification, signature checks) run after run.
struct FuzzFixtures {
    static let audience = "spiffe://example.org/fuzz-audience"

    let bundle: SPIFFEBundle
    let x509Bundle: X509Bundle
    let now: Date
    /// A key made at start-up, never stored, that signs whatever claims the `jwt-claims` target is given, so the
    /// checks after the signature (expiry, audience, …) see fuzzed claims; `signedBundle` publishes it.
    let claimsKey: PrivateKey
    let signedBundle: SPIFFEBundle
    static let claimsKeyID = "fuzz-claims"

    init(directory: String) throws {
        let trustDomain = try TrustDomain("example.org")
        let json = try Data(contentsOf: URL(fileURLWithPath: directory + "/bundle.json"))
        bundle = try SPIFFEBundle(trustDomain: trustDomain, jwksData: json)
        x509Bundle = try X509Bundle(bundle)
        let seconds = try String(contentsOfFile: directory + "/now", encoding: .utf8)
        guard let epoch = TimeInterval(seconds.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FuzzSetupError("\(directory)/now must hold seconds since the epoch")
        }
        now = Date(timeIntervalSince1970: epoch)
        claimsKey = try PrivateKey(generating: .ecP256)
        var signed = bundle
        signed.jwtAuthorities.append(.init(keyID: Self.claimsKeyID, key: try claimsKey.publicKey.jwk))
        signedBundle = signed
    }

    /// A compact JWS over `claims` (any bytes), signed with the start-up key.
    func token(claims: Data) throws -> String {
        let header = Data(#"{"alg":"ES256","kid":"\#(Self.claimsKeyID)","typ":"JWT"}"#.utf8)
        let signingInput = Self.base64URL(header) + "." + Self.base64URL(claims)
        let signature = try claimsKey.signature(over: Data(signingInput.utf8), algorithm: .es256)
        return signingInput + "." + Self.base64URL(signature)
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Writes new fixtures and a seed corpus for every target into `directory` (the `Fuzz` folder): a fresh CA and
    /// JWT key (thrown away afterwards), an SVID chain and a token they signed, and one or more valid inputs for
    /// every other parser. `configPath` is the reference configuration, the config target's seed.
    static func writeSeeds(into directory: String, configPath: String) throws {
        let trustDomain = try TrustDomain("example.org")
        let now = Date()
        let ca = try CertificateAuthority.makeRoot(trustDomain: trustDomain, keyType: .ecP256, ttl: .seconds(100 * 365 * 86400), now: now)
        let svidKey = try PrivateKey(generating: .ecP256)
        let workload = try SPIFFEID("spiffe://example.org/fuzz/workload")
        let chain = try ca.issueX509SVID(
            csr: try CertificateSigningRequest(privateKey: svidKey, spiffeID: workload),
            spiffeID: workload,
            ttl: .seconds(90 * 365 * 86400),
            dnsNames: ["workload.example.org"],
            now: now
        )
        let jwtKey = try PrivateKey(generating: .ecP256)
        let signer = try JWTSVIDSigner(privateKey: jwtKey, keyID: JWTSVIDSigner.keyID(for: try jwtKey.publicKey))
        let token = try signer.sign(
            spiffeID: workload,
            audience: [audience, "other"],
            expiresAt: now + 90 * 365 * 86400,
            issuedAt: now
        )
        let spiffeBundle = SPIFFEBundle(
            trustDomain: trustDomain,
            x509Authorities: [ca.certificate.derEncoded],
            jwtAuthorities: [.init(keyID: signer.keyID, key: try jwtKey.publicKey.jwk)],
            sequenceNumber: 1,
            refreshHint: 300
        )
        let bundleJSON = try spiffeBundle.jwksData { der in try Certificate(derEncoded: der).publicKey.jwk }

        let fixtures = directory + "/fixtures"
        try FileManager.default.createDirectory(atPath: fixtures, withIntermediateDirectories: true)
        try bundleJSON.write(to: URL(fileURLWithPath: fixtures + "/bundle.json"))
        try Data("\(Int(now.timeIntervalSince1970) + 60)\n".utf8).write(to: URL(fileURLWithPath: fixtures + "/now"))

        let uid = "0c0a1d3e-6f2b-4c8e-9a7d-5b1e2f3a4c5d"
        let cid = String(repeating: "3f9a2c", count: 10) + "abcd"
        let inspectJSON =
            #"{"Id":"\#(cid)","Image":"sha256:\#(cid)","Config":{"Image":"nginx:1.27","Labels":{"app":"web"},"Env":["A=1"]}}"#
        let chainPEM = chain.map { PEM.encode(label: "CERTIFICATE", der: $0.derEncoded) }.joined()
        let seeds: [FuzzTarget: [String: Data]] = [
            .spiffeID: [
                "id": Data("spiffe://example.org/ns/shop/sa/api".utf8),
                "domain": Data("spiffe://example.org".utf8),
                "encoded": Data("spiffe://a-b.example.org/x.y/%41_-~".utf8),
            ],
            .selector: [
                "unix": Data("unix:uid:1000".utf8),
                "k8s": Data("k8s:pod-label:app:web".utf8),
            ],
            .pem: ["chain": Data(chainPEM.utf8)],
            .x509: ["svid": Data(chain.flatMap(\.derEncoded)), "ca": ca.certificate.derEncoded],
            .jwt: ["token": Data(token.token.utf8)],
            .jwtClaims: [
                "claims": Data(
                    #"{"sub":"spiffe://example.org/fuzz/workload","aud":["\#(audience)","b"],"exp":4102444800,"iat":1700000000,"nbf":1700000000}"#
                        .utf8
                ),
                "single-audience": Data(#"{"sub":"spiffe://example.org/x","aud":"\#(audience)","exp":4102444800}"#.utf8),
            ],
            .bundle: ["bundle": bundleJSON],
            .cgroup: [
                "v1": Data("11:hugetlb:/kubepods/burstable/pod\(uid)/\(cid)\n4:pids:/kubepods/burstable/pod\(uid)/\(cid)\n".utf8),
                "v2-systemd": Data(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice/cri-containerd-\(cid).scope\n"
                        .utf8
                ),
                "docker": Data("0::/system.slice/docker-\(cid).scope\n".utf8),
                "rootless": Data(
                    "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(cid).scope/container\n".utf8
                ),
                "mountinfo": Data(
                    "1 0 0:1 /kubepods/pod\(uid)/\(cid) /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n".utf8
                ),
            ],
            .podList: ["pods": Data(podListSeed(uid: uid, cid: cid).utf8)],
            .config: ["reference": try Data(contentsOf: URL(fileURLWithPath: configPath))],
            .engineAnswer: [
                "inspect": Data(
                    ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(inspectJSON.utf8.count)\r\n\r\n"
                        + inspectJSON).utf8
                ),
                "chunked": Data(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(String(inspectJSON.utf8.count, radix: 16))\r\n\(inspectJSON)\r\n0\r\n\r\n"
                        .utf8
                ),
            ],
        ]
        for (target, inputs) in seeds {
            let folder = directory + "/corpus/" + target.rawValue
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for (name, data) in inputs {
                try data.write(to: URL(fileURLWithPath: folder + "/seed-" + name))
            }
        }
    }

    static func podListSeed(uid: String, cid: String) -> String {
        """
        {"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"api-7d9f","namespace":"shop",\
        "uid":"\(uid)","labels":{"app":"api","tier":"backend"},"ownerReferences":[{"kind":"ReplicaSet","name":"api-7d",\
        "uid":"11111111-2222-3333-4444-555555555555","controller":true}],"annotations":{"a":"b"}},"spec":{"nodeName":\
        "node-1","serviceAccountName":"api","containers":[{"name":"api","image":"registry/api:1.2"}]},"status":{"phase":\
        "Running","containerStatuses":[{"name":"api","image":"registry/api:1.2","imageID":"registry/api@sha256:\
        \(String(repeating: "ab", count: 32))","containerID":"containerd://\(cid)","ready":true,"restartCount":0}],\
        "initContainerStatuses":[{"name":"init","image":"busybox","imageID":"busybox@sha256:00","containerID":\
        "containerd://\(String(repeating: "0", count: 64))"}]}}]}
        """
    }
}

struct FuzzSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
