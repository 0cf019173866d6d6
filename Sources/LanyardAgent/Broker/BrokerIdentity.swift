import Foundation
import NIOCertificateReloading
import NIOSSL
import SPIFFE
import SPIFFECrypto
import Synchronization
import Timing
import Upstream

/// The Broker Endpoint's own X509-SVID (standalone mode: signed by the embedded CA for the configured ID), handed
/// to TLS at every handshake and renewed at half its life, so long-lived broker connections never see it expire.
final class BrokerIdentity: CertificateReloader {
    private struct Current {
        let override: NIOSSLContextConfigurationOverride
        let renewAt: Date
    }

    let spiffeID: SPIFFEID
    private let authority: LocalAuthority
    private let clock: any AgentClock
    private let current = Mutex<Current?>(nil)

    init(spiffeID: SPIFFEID, authority: LocalAuthority, clock: any AgentClock) {
        self.spiffeID = spiffeID
        self.authority = authority
        self.clock = clock
    }

    var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride {
        let now = clock.now
        return current.withLock { current in
            if let held = current, now < held.renewAt { return held.override }
            guard let minted = try? mint(at: now) else {
                // The CA cannot sign now: keep presenting the last SVID while it is valid; handshakes fail after.
                return current?.override ?? NIOSSLContextConfigurationOverride()
            }
            current = minted
            return minted.override
        }
    }

    private func mint(at now: Date) throws -> Current {
        let key = try PrivateKey(generating: .ecP256)
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: spiffeID, dnsNames: [])
        let chain = try authority.signX509SVID(csr: csr, spiffeID: spiffeID, ttl: nil, dnsNames: [], now: now)
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = try chain.map {
            .certificate(try NIOSSLCertificate(bytes: Array($0.derEncoded), format: .der))
        }
        override.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(try key.pemEncoded.utf8), format: .pem))
        let leaf = chain[0]
        let renewAt = leaf.notBefore.addingTimeInterval(leaf.notAfter.timeIntervalSince(leaf.notBefore) / 2)
        return Current(override: override, renewAt: renewAt)
    }
}
