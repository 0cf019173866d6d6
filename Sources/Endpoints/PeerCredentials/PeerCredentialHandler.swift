import CLinux
import GRPCNIOTransportHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP2
import SPIFFE

#if canImport(Glibc)
    import Glibc
#endif

/// Pins the caller of each connection as it is accepted, and carries that caller into each RPC as a private header
/// that no client can forge.
///
/// grpc-swift's `ServerContext` has no peer credentials for Unix sockets. The transport's per-connection callback
/// sees the accepted socket: `SO_PEERCRED` gives the pid, uid and gid of the process that called `connect()`, and
/// `SO_PEERPIDFD` a pidfd for it, from which the backend builds the connection's ``CallerPin`` before a single
/// byte is read. The per-stream callback installs this handler first in the stream pipeline: it strips the header
/// from every HEADERS frame and adds the connection's number to the first one; the service looks the caller up by
/// it and fails closed when there is none. The handler must be installed on every listener that serves these
/// services.
///
/// The same callbacks hold each uid to its ``CallerLimits``: a connection over the limit is closed as it is
/// accepted, and a call over the limit is answered `RESOURCE_EXHAUSTED` here, before gRPC decodes anything.
final class PeerCredentialHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The private header; never trusted from the network.
    static let headerName = "x-lanyard-peer-credentials"

    /// The number of the connection's caller in ``ConnectedCallers``.
    private let caller: UInt64?
    /// Set when the caller holds its limit of calls: the stream is answered with this message and nothing else.
    private let refusal: String?
    private var injected = false

    init(caller: UInt64?, refusal: String? = nil) {
        self.caller = caller
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
            if !injected, let caller {
                headers.headers.add(name: Self.headerName, value: String(caller))
                injected = true
            }
            payload = .headers(headers)
        }
        context.fireChannelRead(wrapInboundOut(payload))
    }

    /// Parses the header value the handler wrote.
    static func parse(_ value: String) -> UInt64? { UInt64(value) }

    /// `struct ucred` as Linux lays it out; glibc hides its own definition behind `_GNU_SOURCE`.
    private struct KernelCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The kernel's view of the process at the other end of `socket`, and a pidfd for it where the kernel has
    /// `SO_PEERPIDFD` (Linux >= 6.5); nil when the credentials cannot be read.
    static func peer(of socket: any Channel) -> EventLoopFuture<(WorkloadProcess, PeerProcess)?> {
        guard let provider = socket as? any SocketOptionProvider else {
            return socket.eventLoop.makeSucceededFuture(nil)
        }
        let level = SocketOptionLevel(SOL_SOCKET)
        let credentials = provider.unsafeGetSocketOption(level: level, name: SocketOptionName(SO_PEERCRED))
            .map { (kernel: KernelCredentials) -> KernelCredentials? in kernel }
            .recover { _ in nil }
        let pidfd = provider.unsafeGetSocketOption(level: level, name: SocketOptionName(lanyard_SO_PEERPIDFD()))
            .map { (descriptor: Int32) -> PeerProcess in descriptor >= 0 ? .pidfd(descriptor) : .unknown }
            .recover { error in
                // Only a kernel without the option may fall back to finding the process by its pid; any other
                // failure leaves the caller unpinnable, and every call on the connection fails.
                (error as? IOError)?.errnoCode == ENOPROTOOPT ? .pidfdUnsupported : .unknown
            }
        return credentials.and(pidfd).map { kernel, process in
            guard let kernel, kernel.pid > 0 else {
                if case .pidfd(let descriptor) = process { close(descriptor) }
                return nil
            }
            return (WorkloadProcess(pid: kernel.pid, uid: kernel.uid, gid: kernel.gid), process)
        }
    }

    /// The transport callback for each accepted connection: holds the caller to the connection limits, pins it and
    /// records it for the connection's calls.
    static func admitConnection(
        limiter: CallerLimiter,
        callers: ConnectedCallers,
        idleTimeout: Duration?,
        pin: @escaping @Sendable (WorkloadProcess, PeerProcess) -> any CallerPin
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            peer(of: channel).map { peer in
                // Without credentials there is no caller to count or pin, and no call could be answered.
                guard let (credentials, process) = peer else {
                    channel.close(promise: nil)
                    return
                }
                guard limiter.acquire(.connection, uid: credentials.uid) else {
                    if case .pidfd(let descriptor) = process { close(descriptor) }
                    channel.close(promise: nil)
                    return
                }
                let connection = ObjectIdentifier(channel)
                let caller = ConnectedCaller(credentials: credentials, pin: pin(credentials, process))
                callers.add(caller, connection: connection)
                channel.closeFuture.whenComplete { _ in
                    callers.remove(connection: connection)
                    limiter.release(.connection, uid: credentials.uid)
                }
                if let idleTimeout { callers.closeWhenIdle(channel, after: TimeAmount(idleTimeout)) }
            }
        }
    }

    /// The transport callback that installs the handler on each new stream, counting it against the caller's calls.
    static func installOnStream(
        limiter: CallerLimiter,
        callers: ConnectedCallers
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            // Never a failed future: gRPC has already wrapped the stream in an async channel, and a failed
            // initializer would drop it unfinished, which NIO treats as a fatal error. A stream that closed before
            // the handler could be added (a client reset it at once) is closed and left to end.
            channel.eventLoop.makeCompletedFuture {
                var number: UInt64? = nil
                var refusal: String?
                if let connection = channel.parent.map(ObjectIdentifier.init),
                    let found = callers.number(of: connection), let caller = callers.caller(number: found)
                {
                    number = found
                    callers.countCall(on: channel)
                    let uid = caller.credentials.uid
                    if limiter.acquire(.call, uid: uid) {
                        channel.closeFuture.whenComplete { _ in limiter.release(.call, uid: uid) }
                    } else {
                        refusal =
                            "too many calls in progress for uid \(uid) (workload_api.max_calls_per_caller is \(limiter.limits.maxCalls))"
                    }
                }
                do {
                    try channel.pipeline.syncOperations.addHandler(
                        PeerCredentialHandler(caller: number, refusal: refusal),
                        position: .first
                    )
                } catch {
                    channel.close(promise: nil)
                }
            }
        }
    }
}
