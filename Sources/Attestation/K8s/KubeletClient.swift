import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
public import SPIFFE
import Synchronization

/// Reads the kubelet's pod list: `GET /pods` on the secure port over HTTPS with a bearer token, or on the read-only
/// port over plain HTTP.
///
/// The token and the CA file are read on every request (they are small, and requests are rare because
/// ``PodListFetcher`` shares them), so a rotated projected token or CA is picked up at once. The whole exchange is
/// bounded in time and the body in size; redirects are refused so the token never travels elsewhere.
public final class KubeletClient: Sendable {
    public struct Config: Sendable, Equatable {
        /// Where the kubelet listens; a DNS name is also checked against its certificate, an IP address is not.
        public var host: String
        public var securePort: Int
        /// Plain HTTP to this port instead of HTTPS when non-zero.
        public var readOnlyPort: Int
        public var tokenPath: String
        public var caPath: String
        /// Accepts any kubelet certificate. For clusters whose kubelet serves a self-signed certificate only.
        public var skipVerification: Bool
        /// Bound on the whole exchange, from connecting to the last byte of the body.
        public var requestTimeout: Duration
        /// Larger pod lists are refused rather than buffered.
        public var maximumResponseBytes: Int
        /// A client certificate (PEM chain) and its key for the secure port, instead of the bearer token; both are
        /// read on every request, like the token, so a rotated pair is used at once.
        public var certificatePath: String?
        public var privateKeyPath: String?
        /// Neither a token nor a client certificate (`use_anonymous_authentication`), for kubelets that allow it.
        public var anonymous: Bool

        public init(
            host: String = "127.0.0.1",
            securePort: Int = 10250,
            readOnlyPort: Int = 0,
            tokenPath: String = "/var/run/secrets/kubernetes.io/serviceaccount/token",
            caPath: String = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            skipVerification: Bool = false,
            requestTimeout: Duration = .seconds(10),
            maximumResponseBytes: Int = 32 << 20,
            certificatePath: String? = nil,
            privateKeyPath: String? = nil,
            anonymous: Bool = false
        ) {
            self.host = host
            self.securePort = securePort
            self.readOnlyPort = readOnlyPort
            self.tokenPath = tokenPath
            self.caPath = caPath
            self.skipVerification = skipVerification
            self.requestTimeout = requestTimeout
            self.maximumResponseBytes = maximumResponseBytes
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
            self.anonymous = anonymous
        }

        /// How the agent proves itself to the kubelet, for messages.
        var credentials: String {
            if anonymous { return "no credentials (anonymous)" }
            if let certificatePath { return "the client certificate \(certificatePath)" }
            return "the token from \(tokenPath)"
        }

        /// `https://host:port/pods`, or `http://…` on the read-only port.
        public var url: String {
            let bracketed = host.contains(":") ? "[\(host)]" : host
            return readOnlyPort != 0
                ? "http://\(bracketed):\(readOnlyPort)/pods" : "https://\(bracketed):\(securePort)/pods"
        }
    }

    public let config: Config
    /// The TLS settings built from the CA file's and client certificate's bytes, rebuilt only when those change.
    private let tls = Mutex<(inputs: [Data], configuration: TLSConfiguration)?>(nil)

    public init(config: Config) {
        self.config = config
    }

    /// One `GET /pods`, decoded.
    public func fetchPodList() async throws(AttestationError) -> PodList {
        var request = HTTPClientRequest(url: config.url)
        request.headers.add(name: "Accept", value: "application/json")
        if config.readOnlyPort == 0 {
            if !config.anonymous && config.certificatePath == nil {
                request.headers.add(name: "Authorization", value: "Bearer \(try token())")
            }
            request.tlsConfiguration = try tlsConfiguration()
        }
        let body = try await withTimeout { [config, request] () async throws(AttestationError) -> ByteBuffer in
            let response: HTTPClientResponse
            do {
                response = try await kubeletHTTPClient.execute(request, timeout: .init(config.requestTimeout))
            } catch let error as HTTPClientError where error == .deadlineExceeded {
                throw Self.timedOut(config)
            } catch {
                throw AttestationError(
                    .kubeletUnavailable,
                    "cannot reach the kubelet at \(config.url): \(Self.describe(error))"
                )
            }
            switch response.status.code {
            case 200: break
            case 401, 403:
                throw AttestationError(
                    .kubeletUnavailable,
                    "the kubelet at \(config.url) refused \(config.credentials) (HTTP \(response.status.code))"
                )
            default:
                throw AttestationError(
                    .kubeletUnavailable,
                    "the kubelet at \(config.url) answered HTTP \(response.status.code)"
                )
            }
            let length = response.headers.first(name: "Content-Length").flatMap(Int.init)
            if let length, length > config.maximumResponseBytes { throw self.tooLarge() }
            do {
                // Sized once from Content-Length: a growing buffer would briefly hold two copies of a large list.
                var body = ByteBufferAllocator().buffer(capacity: length ?? 64 << 10)
                for try await var chunk in response.body {
                    guard body.readableBytes + chunk.readableBytes <= config.maximumResponseBytes else {
                        throw self.tooLarge()
                    }
                    body.writeBuffer(&chunk)
                }
                return body
            } catch let error as AttestationError {
                throw error
            } catch {
                throw AttestationError(
                    .kubeletUnavailable,
                    "the pod list from \(config.url) was cut short: \(Self.describe(error))"
                )
            }
        }
        let result = body.withUnsafeReadableBytes { bytes in
            Result { () throws(AttestationError) in try PodList.read(bytes) }
        }
        return try result.get()
    }

    private func tooLarge() -> AttestationError {
        AttestationError(
            .kubeletUnavailable,
            "the pod list from \(config.url) is larger than \(config.maximumResponseBytes) bytes; refused"
        )
    }

    private func token() throws(AttestationError) -> String {
        guard let data = FileManager.default.contents(atPath: config.tokenPath) else {
            throw AttestationError(.kubeletUnavailable, "cannot read the kubelet token at \(config.tokenPath)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw AttestationError(
                .kubeletUnavailable,
                "the kubelet token at \(config.tokenPath) is empty or not printable"
            )
        }
        return token
    }

    private func tlsConfiguration() throws(AttestationError) -> TLSConfiguration {
        func read(_ path: String, _ what: String) throws(AttestationError) -> Data {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw AttestationError(.kubeletUnavailable, "cannot read the \(what) at \(path)")
            }
            return data
        }
        let ca = config.skipVerification ? Data() : try read(config.caPath, "kubelet CA")
        let certificate = try config.certificatePath.map { path throws(AttestationError) in
            try read(path, "kubelet client certificate")
        }
        let key = try config.privateKeyPath.map { path throws(AttestationError) in
            try read(path, "kubelet client key")
        }
        let inputs = [ca, certificate ?? Data(), key ?? Data()]
        if let cached = tls.withLock({ $0 }), cached.inputs == inputs { return cached.configuration }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if config.skipVerification {
            configuration.certificateVerification = .none
        } else {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMBytes(Array(ca))
            } catch {
                throw AttestationError(
                    .kubeletUnavailable,
                    "the kubelet CA at \(config.caPath) is not PEM certificates"
                )
            }
            guard !roots.isEmpty else {
                throw AttestationError(.kubeletUnavailable, "the kubelet CA at \(config.caPath) holds no certificate")
            }
            configuration.trustRoots = .certificates(roots)
            // An IP address cannot be matched against the kubelet's serving certificate (it names the node), so only
            // the chain is checked then, as SPIRE does.
            configuration.certificateVerification =
                IPAddressLiteral(config.host) != nil ? .noHostnameVerification : .fullVerification
        }
        if let certificate, let key, let certificatePath = config.certificatePath,
            let privateKeyPath = config.privateKeyPath
        {
            let chain = (try? NIOSSLCertificate.fromPEMBytes(Array(certificate))) ?? []
            guard !chain.isEmpty else {
                throw AttestationError(
                    .kubeletUnavailable,
                    "the kubelet client certificate at \(certificatePath) holds no PEM certificate"
                )
            }
            guard let privateKey = try? NIOSSLPrivateKey(bytes: Array(key), format: .pem) else {
                throw AttestationError(
                    .kubeletUnavailable,
                    "the kubelet client key at \(privateKeyPath) is not a PEM private key"
                )
            }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(privateKey)
        }
        tls.withLock { $0 = (inputs, configuration) }
        return configuration
    }

    /// Runs `body`, failing with a clear error when it takes longer than the request timeout.
    private func withTimeout<T: Sendable>(
        _ body: @escaping @Sendable () async throws(AttestationError) -> T
    ) async throws(AttestationError) -> T {
        let config = config
        let timeout = config.requestTimeout
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else { throw Self.timedOut(config) }
                return value
            }
        } catch let error as AttestationError {
            throw error
        } catch {
            throw AttestationError(.kubeletUnavailable, "the kubelet request to \(config.url) was cancelled")
        }
    }

    private static func timedOut(_ config: Config) -> AttestationError {
        AttestationError(
            .kubeletUnavailable,
            "the kubelet at \(config.url) did not answer within \(config.requestTimeout)"
        )
    }

    /// A short, token-free account of a transport error.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOSSLError:
            if case .handshakeFailed(let reason) = error {
                return
                    "TLS handshake failed (is kubelet_ca_path the CA that signed the kubelet's certificate?): \(reason)"
            }
            return "TLS error: \(error)"
        case let error as HTTPClientError: return "\(error)"
        case let error as NIOConnectionError:
            return "connection failed: \(error.connectionErrors.map { "\($0.error)" }.first ?? "\(error)")"
        default: return "\(error)"
        }
    }
}

/// One client for the process: connections to the kubelet are kept alive between fetches, and nothing has to shut
/// it down when a reload replaces the attestor. A failed connection fails the request at once (a wrong CA does not
/// heal by retrying within one request); attestation's own polling is the retry.
private let kubeletHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled)
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
}()
