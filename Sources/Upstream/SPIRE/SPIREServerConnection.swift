import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOSSL
import SPIFFE
import SPIFFECrypto
import Synchronization

/// The agent's mTLS gRPC connections to SPIRE Server.
///
/// The server must present an X509-SVID that chains to the agent's current bundle (or the bootstrap bundle before
/// the first attestation) and names exactly `spiffe://<trust domain>/spire/server`; the check is this module's
/// OpenSSL verifier, not a host name. The agent presents its SVID except while attesting, as SPIRE expects.
/// Calls as the agent share one connection per agent SVID and bundle (a JWT-SVID mint between syncs costs no TCP or
/// TLS handshake); a renewed SVID or a rotated bundle opens a new one for the next call and closes the old, and any
/// failed call drops it, so the next call connects afresh. Attestation gets a connection of its own each time.
struct SPIREServerConnection: Sendable {
    let config: SPIREServerConfig
    private let shared = SharedClient()

    init(config: SPIREServerConfig) {
        self.config = config
    }

    typealias Client = GRPCClient<HTTP2ClientTransport.Posix>

    /// Runs `body` with a client presenting `identity` (nil: no client certificate, a connection of its own) and
    /// trusting `authorities`; the server's certificate must be valid at `now`, the agent's time. Nil `authorities`
    /// is `insecure_bootstrap`'s first contact: the chain is not verified, only its leaf's SPIFFE ID checked.
    func withClient<Result: Sendable>(
        presenting identity: X509SVID?,
        trusting authorities: [Data]?,
        at now: Date,
        _ body: @Sendable (Client) async throws -> Result
    ) async throws -> Result {
        guard let identity, let authorities else {
            let (transport, verifier) = try makeTransport(presenting: identity, trusting: authorities, at: now)
            do {
                return try await withGRPCClient(transport: transport) { client in try await body(client) }
            } catch {
                throw classify(error, verifier: verifier)
            }
        }
        let key = SharedClient.Key(leaf: identity.certificates[0].derEncoded, authorities: authorities)
        let open = try shared.client(for: key) {
            let (transport, verifier) = try makeTransport(presenting: identity, trusting: authorities, at: now)
            return (GRPCClient(transport: transport), verifier)
        }
        open.verifier.advance(to: now)
        do {
            return try await body(open.client)
        } catch {
            shared.drop(open)
            throw classify(error, verifier: open.verifier)
        }
    }

    /// Closes the shared connection (the agent is stopping).
    func close() {
        shared.closeAll()
    }

    private func makeTransport(
        presenting identity: X509SVID?,
        trusting authorities: [Data]?,
        at now: Date
    ) throws(UpstreamError) -> (HTTP2ClientTransport.Posix, ServerVerifier) {
        let verifier = ServerVerifier(
            trustDomain: config.trustDomain,
            serverID: config.serverID,
            authorities: authorities,
            now: now
        )
        // An IP address cannot be sent as SNI, so literal addresses are targeted as such and names through DNS.
        let target: any ResolvableTarget =
            switch IPAddressLiteral(config.host) {
            case .v4: .ipv4(address: config.host, port: config.port)
            case .v6: .ipv6(address: config.host, port: config.port)
            case nil: .dns(host: config.host, port: config.port)
            }
        do {
            let keyPEM = try identity.map { try Array($0.privateKey.pemEncoded.utf8) }
            let transport = try HTTP2ClientTransport.Posix(
                target: target,
                transportSecurity: .tls { tls in
                    if let identity, let keyPEM {
                        tls.certificateChain = identity.certificates.map { .bytes(Array($0.derEncoded), format: .der) }
                        tls.privateKey = .bytes(keyPEM, format: .pem)
                    }
                    if let authorities {
                        tls.trustRoots = .certificates(authorities.map { .bytes(Array($0), format: .der) })
                    }
                    tls.serverCertificateVerification = .noHostnameVerification
                    tls.customVerificationCallback = { certificates, promise in
                        promise.succeed(verifier.verify(certificates))
                    }
                }
            )
            return (transport, verifier)
        } catch {
            throw UpstreamError(.unavailable, "cannot set up the connection to \(config.host):\(config.port): \(error)")
        }
    }

    /// What a failed call throws: errors of the caller's own kind and the server's PERMISSION_DENIED as they are
    /// (callers tell eviction from other refusals), an untrusted server as such, anything else as unavailable.
    private func classify(_ error: any Error, verifier: ServerVerifier) -> any Error {
        if error is UpstreamError { return error }
        if let error = error as? RPCError, error.code == .permissionDenied { return error }
        if let refusal = verifier.refusal {
            return UpstreamError(.untrustedServer, "refused the server at \(config.host):\(config.port): \(refusal)")
        }
        return UpstreamError(.unavailable, "spire server \(config.host):\(config.port): \(Self.describe(error))")
    }

    /// Call options bounding each RPC.
    var callOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = config.requestTimeout
        return options
    }

    /// Node attestation waits at least 30 s: a join token is spent when the server accepts it, so an attestation the
    /// agent gave up on while the server completed it could never be repeated.
    var attestationCallOptions: CallOptions {
        var options = callOptions
        options.timeout = max(config.requestTimeout, .seconds(30))
        return options
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? RPCError {
            return "\(error.code): \(error.message)" + (error.cause.map { " (\($0))" } ?? "")
        }
        return "\(error)"
    }
}

/// Checks the server's chain against the bundle with `X509SVIDVerifier` and requires the server's SPIFFE ID;
/// remembers why it refused, for the error the caller sees.
final class ServerVerifier: Sendable {
    let trustDomain: TrustDomain
    let serverID: SPIFFEID
    /// Nil: `insecure_bootstrap`'s first contact, where only the leaf's SPIFFE ID is checked.
    let authorities: [Data]?
    /// The time the chain must be valid at: the agent's time of the latest call on the connection, so a shared
    /// connection that reconnects checks the server's certificate at the time of the call it reconnects for.
    private let time: Mutex<Date>
    private let lastRefusal = Mutex<String?>(nil)

    init(trustDomain: TrustDomain, serverID: SPIFFEID, authorities: [Data]?, now: Date) {
        self.trustDomain = trustDomain
        self.serverID = serverID
        self.authorities = authorities
        self.time = Mutex(now)
    }

    var refusal: String? { lastRefusal.withLock { $0 } }

    func advance(to now: Date) {
        time.withLock { $0 = now }
    }

    func verify(_ presented: [NIOSSLCertificate]) -> NIOSSLVerificationResultWithMetadata {
        do {
            let chain = try presented.map { try Certificate(derEncoded: Data($0.toDERBytes())) }
            let id: SPIFFEID?
            if let authorities {
                let anchors = try authorities.map { try Certificate(derEncoded: $0) }
                id = try X509SVIDVerifier.verify(
                    chain,
                    bundle: X509Bundle(trustDomain: trustDomain, authorities: anchors),
                    at: time.withLock { $0 }
                )
            } else {
                id = chain.first?.spiffeID
            }
            guard id == serverID else {
                lastRefusal.withLock { $0 = "it presented \(id.map(\.description) ?? "no SPIFFE ID"), not \(serverID)" }
                return .failed
            }
            lastRefusal.withLock { $0 = nil }
            return .certificateVerified(VerificationMetadata(ValidatedCertificateChain(presented)))
        } catch {
            lastRefusal.withLock { $0 = "its certificate is not trusted: \(error)" }
            return .failed
        }
    }
}
