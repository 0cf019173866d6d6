package import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
package import SPIFFECrypto
import Synchronization

/// A kubelet stand-in that serves `GET /pods` over HTTPS (its own CA, a required bearer token) or plain HTTP, from
/// pods it is given, and can be told to fail the ways a real kubelet does: an error status, slowness, a hang, a
/// body cut short, an oversized body.
package final class FakeKubelet: Sendable {
    /// How the next requests are answered.
    package enum Behaviour: Sendable, Equatable {
        case normal
        /// This HTTP status with a short text body.
        case status(Int)
        /// The normal answer after a delay.
        case slow(Duration)
        /// Never answers.
        case hang
        /// Announces the full length, sends half, closes.
        case truncated
        /// A 200 whose body is this many bytes (a JSON document padded to that size).
        case oversized(Int)
    }

    package let host: String
    package let port: Int
    package let usesTLS: Bool
    /// The CA that signed the serving certificate, for the agent's `kubelet_ca_path`.
    package let caPEM: String
    private let channel: any Channel
    private let responder: Responder

    /// Starts serving on `host:port` (0 picks a free port). `token` nil accepts unauthenticated requests;
    /// `tls` false serves plain HTTP like the read-only port. With `clientCA`, the TLS handshake requires a client
    /// certificate that chains to it, as a kubelet with `--client-ca-file` and no anonymous access does.
    package static func start(
        host: String = "127.0.0.1",
        port: Int = 0,
        tls: Bool = true,
        token: String? = "fake-kubelet-token",
        clientCA: Certificate? = nil,
        pods: [FakePod] = []
    ) async throws -> FakeKubelet {
        let (caPEM, context) = try Self.makeTLS(clientCA: clientCA)
        let responder = Responder(token: token, podList: FakePod.podListJSON(pods))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(PodsHandler(responder: responder))
                }
            }
            .bind(host: host, port: port)
            .get()
        return FakeKubelet(
            host: host,
            port: channel.localAddress?.port ?? port,
            usesTLS: tls,
            caPEM: caPEM,
            channel: channel,
            responder: responder
        )
    }

    private init(host: String, port: Int, usesTLS: Bool, caPEM: String, channel: any Channel, responder: Responder) {
        self.host = host
        self.port = port
        self.usesTLS = usesTLS
        self.caPEM = caPEM
        self.channel = channel
        self.responder = responder
    }

    package func stop() async {
        try? await channel.close()
    }

    /// Serves `pods` from now on.
    package func setPods(_ pods: [FakePod]) {
        setPodListJSON(FakePod.podListJSON(pods))
    }

    /// Serves this exact body (a pod list from a file, or something malformed) from now on.
    package func setPodListJSON(_ json: Data) {
        responder.state.withLock { $0.podList = json }
    }

    package func setBehaviour(_ behaviour: Behaviour) {
        responder.state.withLock { $0.behaviour = behaviour }
    }

    /// `GET /pods` requests received, authorised or not.
    package var requestCount: Int { responder.state.withLock { $0.requests } }
    /// Requests refused for a missing or wrong token.
    package var unauthorizedCount: Int { responder.state.withLock { $0.unauthorized } }

    /// A throwaway CA and a serving certificate for `localhost` signed by it.
    private static func makeTLS(clientCA: Certificate?) throws -> (caPEM: String, NIOSSLContext) {
        let now = Date()
        let caKey = try PrivateKey(generating: .ecP256)
        let ca = try CertificateTemplate(
            subject: [("CN", "fake-kubelet-ca")],
            notBefore: now.addingTimeInterval(-60),
            notAfter: now.addingTimeInterval(86_400),
            isCA: true,
            keyUsage: [.keyCertSign, .cRLSign]
        ).sign(subjectKey: caKey.publicKey, issuer: nil, issuerKey: caKey)
        let servingKey = try PrivateKey(generating: .ecP256)
        let serving = try CertificateTemplate(
            subject: [("CN", "localhost")],
            notBefore: now.addingTimeInterval(-60),
            notAfter: now.addingTimeInterval(86_400),
            keyUsage: [.digitalSignature],
            extendedKeyUsage: [.serverAuth],
            dnsNames: ["localhost"]
        ).sign(subjectKey: servingKey.publicKey, issuer: ca, issuerKey: caKey)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(serving.derEncoded), format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(servingKey.pemEncoded.utf8), format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        if let clientCA {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates([
                try NIOSSLCertificate(bytes: Array(clientCA.derEncoded), format: .der)
            ])
        }
        return (ca.pemEncoded, try NIOSSLContext(configuration: configuration))
    }
}

/// The kubelet's answers, shared by every connection.
final class Responder: Sendable {
    struct State {
        var podList: Data
        var behaviour: FakeKubelet.Behaviour = .normal
        var requests = 0
        var unauthorized = 0
    }

    let token: String?
    let state: Mutex<State>

    init(token: String?, podList: Data) {
        self.token = token
        self.state = Mutex(State(podList: podList))
    }

    /// What to answer a request with `authorization`: status, body, and how to deliver it.
    func answer(authorization: String?) -> (status: Int, body: Data, behaviour: FakeKubelet.Behaviour) {
        state.withLock { state in
            state.requests += 1
            if let token, authorization != "Bearer \(token)" {
                state.unauthorized += 1
                return (401, Data("Unauthorized\n".utf8), .normal)
            }
            switch state.behaviour {
            case .status(let code): return (code, Data("fake kubelet failure\n".utf8), .normal)
            case .oversized(let size):
                let prefix = Data(#"{"kind":"PodList","apiVersion":"v1","metadata":{"annotations":""#.utf8)
                let suffix = Data(#""},"items":[]}"#.utf8)
                let filler = Data(repeating: UInt8(ascii: "x"), count: max(0, size - prefix.count - suffix.count))
                return (200, prefix + filler + suffix, .normal)
            default: return (200, state.podList, state.behaviour)
            }
        }
    }
}

/// Answers one HTTP/1.1 request at a time on a connection.
private final class PodsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let responder: Responder
    private var head: HTTPRequestHead?

    init(responder: Responder) {
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        if head.method == .GET, head.uri == "/stats" {
            let count = responder.state.withLock { $0.requests }
            send(status: 200, body: Data("{\"requests\":\(count)}".utf8), context: context)
            return
        }
        guard head.method == .GET, head.uri.split(separator: "?").first == "/pods" else {
            send(status: 404, body: Data("not found\n".utf8), context: context)
            return
        }
        let (status, body, behaviour) = responder.answer(authorization: head.headers.first(name: "Authorization"))
        switch behaviour {
        case .hang: return
        case .slow(let delay):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(
                in: .nanoseconds(
                    Int64(delay.components.seconds) * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                )
            ) {
                let (handler, context) = loopBound.value
                handler.send(status: status, body: body, context: context)
            }
        case .truncated:
            send(status: status, body: body.prefix(body.count / 2), declaredLength: body.count, context: context)
            context.close(promise: nil)
        default:
            send(status: status, body: body, context: context)
        }
    }

    private func send(status: Int, body: Data, declaredLength: Int? = nil, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: status == 200 ? "application/json" : "text/plain")
        headers.add(name: "Content-Length", value: String(declaredLength ?? body.count))
        context.write(
            wrapOutboundOut(
                .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))
            ),
            promise: nil
        )
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        if declaredLength == nil {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.flush()
        }
    }
}
