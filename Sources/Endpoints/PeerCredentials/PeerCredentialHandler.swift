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
final class PeerCredentialHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    /// The private header; never trusted from the network.
    static let headerName = "x-lanyard-peer-credentials"

    private let credentials: CallerCredentials?
    private var injected = false

    init(credentials: CallerCredentials?) {
        self.credentials = credentials
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var payload = unwrapInboundIn(data)
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

    /// The transport callback that installs the handler on each new stream.
    static let installOnStream: @Sendable (any Channel) -> EventLoopFuture<Void> = { channel in
        let socket = channel.parent as? any SocketOptionProvider
        let credentials: EventLoopFuture<CallerCredentials?>
        if let socket {
            credentials = socket.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET),
                name: SocketOptionName(SO_PEERCRED)
            )
            .map { (kernel: KernelCredentials) -> CallerCredentials? in
                kernel.pid > 0 ? CallerCredentials(pid: kernel.pid, uid: kernel.uid, gid: kernel.gid) : nil
            }
            .recover { _ in nil }
        } else {
            credentials = channel.eventLoop.makeSucceededFuture(nil)
        }
        return credentials.flatMapThrowing { credentials in
            try channel.pipeline.syncOperations.addHandler(
                PeerCredentialHandler(credentials: credentials),
                position: .first
            )
        }
    }
}
