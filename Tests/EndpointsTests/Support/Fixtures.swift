import Foundation
import SPIFFE

@testable import Endpoints

/// Workload updates built by hand: the identities and bundles a caller could see, with recognizable bytes.
enum Fixtures {
    static let trustDomain = try! TrustDomain("example.org")
    static let partner = try! TrustDomain("partner.org")

    static func svid(_ path: String, generation: Int = 1, hint: String = "") -> WorkloadX509SVID {
        WorkloadX509SVID(
            spiffeID: try! SPIFFEID("spiffe://example.org\(path)"),
            chainDER: Data("chain \(path) \(generation)".utf8),
            privateKeyDER: Data("key \(path) \(generation)".utf8),
            bundleDER: Data("bundle".utf8),
            hint: hint,
            chainPEM: "-----BEGIN CERTIFICATE-----\n\(path) \(generation)\n-----END CERTIFICATE-----\n",
            privateKeyPEM: "-----BEGIN PRIVATE KEY-----\n\(path) \(generation)\n-----END PRIVATE KEY-----\n"
        )
    }

    static func update(_ svids: [WorkloadX509SVID], bundleGeneration: Int = 1, federated: Bool = false) -> WorkloadUpdate {
        var x509: [TrustDomain: Data] = [trustDomain: Data("root \(bundleGeneration)".utf8)]
        var pem: [TrustDomain: String] = [trustDomain: "ROOT \(bundleGeneration)\n"]
        if federated {
            x509[partner] = Data("partner root".utf8)
            pem[partner] = "PARTNER ROOT\n"
        }
        return WorkloadUpdate(
            svids: svids,
            x509Bundles: x509,
            jwtBundles: [trustDomain: Data(#"{"keys":[]}"#.utf8)],
            x509BundlesPEM: pem,
            localTrustDomain: trustDomain
        )
    }

    /// Nonces `n1`, `n2`, … so tests can answer them.
    final class Nonces: @unchecked Sendable {
        private var next = 0
        func make() -> String {
            next += 1
            return "n\(next)"
        }
    }
}
