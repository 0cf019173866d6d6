import Foundation
import NIOCertificateReloading
import NIOSSL
import SPIFFE
import SPIFFECrypto
import Synchronization
import Timing
import Upstream

/// The Broker Endpoint's own X509-SVID, handed to TLS at every handshake, so long-lived broker connections never
/// see it expire: in standalone mode one signed by the embedded CA for the configured ID and renewed at half its
/// life, in fleet mode the agent's SVID from SPIRE Server, whichever one the agent holds now.
final class BrokerIdentity: CertificateReloader {
    /// The SVID to present at `now`, given the one presented last; nil when there is none to present.
    typealias Source = @Sendable (_ now: Date, _ presented: X509SVID?) -> X509SVID?

    private struct Presented {
        let svid: X509SVID
        let override: NIOSSLContextConfigurationOverride
    }

    private let source: Source
    private let clock: any AgentClock
    private let presented = Mutex<Presented?>(nil)

    init(clock: any AgentClock, source: @escaping Source) {
        self.clock = clock
        self.source = source
    }

    /// Standalone: an SVID for `spiffeID` from the embedded CA, a new one (and a new key) once the last is half
    /// through its life. When the CA cannot sign, the last one is kept while it is valid.
    static func signed(by authority: LocalAuthority, for spiffeID: SPIFFEID, clock: any AgentClock) -> BrokerIdentity {
        BrokerIdentity(clock: clock) { now, presented in
            if let presented, now < presented.halfLife { return presented }
            return (try? Self.mint(spiffeID, by: authority, at: now)) ?? presented
        }
    }

    /// Fleet mode: the agent SVID SPIRE Server issued, as the upstream renews it.
    static func agentSVID(of server: SPIREServerUpstream, clock: any AgentClock) -> BrokerIdentity {
        BrokerIdentity(clock: clock) { _, presented in server.currentIdentity?.svid ?? presented }
    }

    var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride {
        let now = clock.now
        return presented.withLock { presented in
            guard let svid = source(now, presented?.svid) else { return NIOSSLContextConfigurationOverride() }
            if let presented, presented.svid.leaf.derEncoded == svid.leaf.derEncoded { return presented.override }
            guard let override = try? Self.override(presenting: svid) else {
                return presented?.override ?? NIOSSLContextConfigurationOverride()
            }
            presented = Presented(svid: svid, override: override)
            return override
        }
    }

    private static func mint(_ spiffeID: SPIFFEID, by authority: LocalAuthority, at now: Date) throws -> X509SVID {
        let key = try PrivateKey(generating: .ecP256)
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: spiffeID, dnsNames: [])
        let chain = try authority.signX509SVID(csr: csr, spiffeID: spiffeID, ttl: nil, dnsNames: [], now: now)
        return try X509SVID(certificates: chain, privateKey: key)
    }

    private static func override(presenting svid: X509SVID) throws -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = try svid.certificates.map {
            .certificate(try NIOSSLCertificate(bytes: Array($0.derEncoded), format: .der))
        }
        override.privateKey = .privateKey(
            try NIOSSLPrivateKey(bytes: Array(try svid.privateKey.pemEncoded.utf8), format: .pem)
        )
        return override
    }
}

extension X509SVID {
    /// Halfway between `notBefore` and `notAfter`.
    fileprivate var halfLife: Date {
        leaf.notBefore.addingTimeInterval(leaf.notAfter.timeIntervalSince(leaf.notBefore) / 2)
    }
}
