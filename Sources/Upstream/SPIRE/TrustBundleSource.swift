import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
public import SPIFFE
import SPIFFECrypto

/// Where the agent learns SPIRE Server's CA before its first attestation (exactly one, as SPIRE Agent allows): a
/// file, a URL (HTTPS checked against the system's web PKI roots, or plain HTTP only over a local Unix socket), or
/// nothing at all (`insecure_bootstrap`). Read only while the agent holds no bundle of its own; from the first
/// attestation on, the bundle kept current by every sync is trusted instead.
public enum TrustBundleSource: Sendable, Equatable {
    /// `trust_bundle_format`: PEM certificates, or a SPIFFE bundle document (JWKS).
    public enum Format: String, Sendable, Equatable, CaseIterable {
        case pem, spiffe
    }

    case file(path: String, format: Format)
    /// `https://…`, or `http://…` with `unixSocket`.
    case url(String, unixSocket: String?, format: Format)
    case insecure

    /// The largest bundle read from a file or a URL.
    static let maximumBytes = 1 << 20

    /// The bootstrap X.509 authorities; nil for `insecure_bootstrap`.
    func authorities(trustDomain: TrustDomain, timeout: Duration) async throws(UpstreamError) -> [Data]? {
        switch self {
        case .insecure:
            return nil
        case .file(let path, let format):
            guard let data = FileManager.default.contents(atPath: path), data.count <= Self.maximumBytes else {
                throw UpstreamError(.attestation, "cannot read the bootstrap trust bundle at \(path)")
            }
            return try Self.parse(data, format: format, trustDomain: trustDomain, from: path)
        case .url(let url, let unixSocket, let format):
            let data = try await Self.fetch(url, unixSocket: unixSocket, timeout: timeout)
            return try Self.parse(data, format: format, trustDomain: trustDomain, from: url)
        }
    }

    /// The authorities in `data`, which must hold at least one.
    static func parse(
        _ data: Data,
        format: Format,
        trustDomain: TrustDomain,
        from source: String
    ) throws(UpstreamError) -> [Data] {
        let authorities: [Data]
        do {
            switch format {
            case .pem:
                authorities = try Certificate.chain(pemEncoded: String(decoding: data, as: UTF8.self)).map(\.derEncoded)
            case .spiffe:
                authorities = try SPIFFEBundle(trustDomain: trustDomain, jwksData: data).x509Authorities
            }
        } catch {
            throw UpstreamError(
                .attestation,
                "the bootstrap trust bundle from \(source) is not a \(format) bundle: \(error)"
            )
        }
        guard !authorities.isEmpty else {
            throw UpstreamError(.attestation, "the bootstrap trust bundle from \(source) holds no X.509 authority")
        }
        return authorities
    }

    /// One GET, bounded in time and size; anything but 200 is an error.
    private static func fetch(_ url: String, unixSocket: String?, timeout: Duration) async throws(UpstreamError) -> Data
    {
        let target: String
        if let unixSocket {
            guard let parsed = URL(string: url),
                let local = URL(httpURLWithSocketPath: unixSocket, uri: parsed.path.isEmpty ? "/" : parsed.path)
            else {
                throw UpstreamError(.attestation, "trust_bundle_url \(url) cannot be requested over \(unixSocket)")
            }
            target = local.absoluteString
        } else {
            target = url
        }
        do {
            let response = try await bootstrapHTTPClient.execute(
                HTTPClientRequest(url: target),
                timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
            )
            guard response.status.code == 200 else {
                throw UpstreamError(.attestation, "trust_bundle_url \(url) answered HTTP \(response.status.code)")
            }
            let body = try await response.body.collect(upTo: maximumBytes)
            return Data(body.readableBytesView)
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw UpstreamError(.attestation, "cannot fetch the bootstrap trust bundle from \(url): \(error)")
        }
    }
}

/// The client for bootstrap bundles: no redirects (the configured URL is the one trusted), the system's roots.
private let bootstrapHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled)
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
}()
