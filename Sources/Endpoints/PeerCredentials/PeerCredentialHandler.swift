import GRPCNIOTransportHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP2

#if canImport(Glibc)
    import Glibc
#endif

/// Carries the kernel's peer credentials into each RPC as a private header, and removes any copy a client sent.
///
/// grpc-swift's `ServerContext` has no peer credentials for Unix sockets. The transport's per-stream callback sees
/// the HTTP/2 stream channel, whose parent is the accepted socket; `SO_PEERCRED` on it gives the caller's pid, uid
/// and gid. This handler sits first in the stream pipeline: it strips the header from every HEADERS frame (so no
/// client can forge it) and adds the kernel's values to the first one. The handler must be installed on every
/// listener that serves these services, and the service fails closed when the header is missing.
///
/// The same callbacks hold each uid to its ``CallerLimits``: a connection over the limit is closed as it is
/// accepted, and a call over the limit is answered `RESOURCE_EXHAUSTED` here, before gRPC decodes anything.
final class PeerCredentialHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The private header; never trusted from the network.
    static let headerName = "x-lanyard-peer-credentials"

    private let credentials: CallerCredentials?
    /// Set when the caller holds its limit of calls: the stream is answered with this message and nothing else.
    private let refusal: String?
    private var injected = false

    init(credentials: CallerCredentials?, refusal: String? = nil) {
        self.credentials = credentials
        self.refusal = refusal
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var payload = unwrapInboundIn(data)
        if let refusal {
            guard case .headers = payload, !injected else { return }
            injected = true
            let trailers: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "8", "grpc-message": refusal,
            ]
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true)))).whenComplete {
                _ in channel.close(promise: nil)
            }
            return
        }
        if case .headers(var headers) = payload {
            headers.headers.remove(name: Self.headerName)
            if !injected, let credentials {
                headers.headers.add(
                    name: Self.headerName,
                    value: "\(credentials.pid),\(credentials.uid),\(credentials.gid)"
                )
                injected = true
            }
            payload = .headers(headers)
        }
        context.fireChannelRead(wrapInboundOut(payload))
    }

    /// Parses the header value the handler wrote.
    static func parse(_ value: String) -> CallerCredentials? {
        let parts = value.split(separator: ",")
        guard parts.count == 3, let pid = Int32(parts[0]), let uid = UInt32(parts[1]), let gid = UInt32(parts[2]) else {
            return nil
        }
        return CallerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// `struct ucred` as Linux lays it out; glibc hides its own definition behind `_GNU_SOURCE`.
    private struct KernelCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The kernel's view of the process at the other end of `socket`, or nil when it cannot be read.
    private static func credentials(of socket: (any Channel)?) -> EventLoopFuture<CallerCredentials?>? {
        guard let socket, let provider = socket as? any SocketOptionProvider else { return nil }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            .map { (kernel: KernelCredentials) -> CallerCredentials? in
                kernel.pid > 0 ? CallerCredentials(pid: kernel.pid, uid: kernel.uid, gid: kernel.gid) : nil
            }
            .recover { _ in nil }
    }

    /// The transport callback for each accepted connection: holds the caller to its connection limit.
    static func admitConnection(limiter: CallerLimiter) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            guard let credentials = credentials(of: channel) else { return channel.eventLoop.makeSucceededVoidFuture() }
            return credentials.map { credentials in
                // Without credentials there is no caller to count; every call on the connection fails closed.
                guard let uid = credentials?.uid else { return }
                if limiter.acquire(.connection, uid: uid) {
                    channel.closeFuture.whenComplete { _ in limiter.release(.connection, uid: uid) }
                } else {
                    channel.close(promise: nil)
                }
            }
        }
    }

    /// The transport callback that installs the handler on each new stream, counting it against the caller's calls.
    static func installOnStream(limiter: CallerLimiter) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            let credentials = credentials(of: channel.parent) ?? channel.eventLoop.makeSucceededFuture(nil)
            // Never a failed future: gRPC has already wrapped the stream in an async channel, and a failed
            // initializer would drop it unfinished, which NIO treats as a fatal error. A stream that closed before
            // the handler could be added (a client reset it at once) is closed and left to end.
            return credentials.map { credentials in
                var refusal: String?
                if let uid = credentials?.uid {
                    if limiter.acquire(.call, uid: uid) {
                        channel.closeFuture.whenComplete { _ in limiter.release(.call, uid: uid) }
                    } else {
                        refusal =
                            "too many calls in progress for uid \(uid) (workload_api.max_calls_per_caller is \(limiter.limits.maxCalls))"
                    }
                }
                do {
                    try channel.pipeline.syncOperations.addHandler(
                        PeerCredentialHandler(credentials: credentials, refusal: refusal),
                        position: .first
                    )
                } catch {
                    channel.close(promise: nil)
                }
            }
        }
    }
}
