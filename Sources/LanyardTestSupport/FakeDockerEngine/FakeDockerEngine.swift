package import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A Docker Engine API stand-in on a Unix socket: `GET [/v<version>]/containers/<id>/json` answers from the
/// containers it is given (404 with Docker's message otherwise). Podman's compatible API answers the same way, so
/// it stands in for both. Answers carry `Content-Length`, or with `chunked` use chunked encoding as Docker does for
/// some endpoints.
package final class FakeDockerEngine: Sendable {
    package let socketPath: String
    private let channel: any Channel
    private let box: StateBox

    package static func start(
        socketPath: String,
        containers: [FakeContainer],
        chunked: Bool = false
    ) async throws
        -> FakeDockerEngine
    {
        unlink(socketPath)
        let box = StateBox(containers)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(EngineHandler(box: box, chunked: chunked))
                }
            }
            .bind(unixDomainSocketPath: socketPath)
            .get()
        return FakeDockerEngine(socketPath: socketPath, channel: channel, box: box)
    }

    private init(socketPath: String, channel: any Channel, box: StateBox) {
        self.socketPath = socketPath
        self.channel = channel
        self.box = box
    }

    package func stop() async {
        try? await channel.close()
        unlink(socketPath)
    }

    /// The request paths received, in order.
    package var requests: [String] { box.state.withLock { $0.requests } }

    package func setContainers(_ containers: [FakeContainer]) {
        box.state.withLock { $0.containers = StateBox.index(containers) }
    }
}

/// The engine's containers and the requests it saw, shared by every connection.
final class StateBox: Sendable {
    struct State {
        var containers: [String: FakeContainer]
        var requests: [String] = []
    }

    let state: Mutex<State>

    init(_ containers: [FakeContainer]) {
        state = Mutex(State(containers: Self.index(containers)))
    }

    static func index(_ containers: [FakeContainer]) -> [String: FakeContainer] {
        Dictionary(containers.map { ($0.id, $0) }) { $1 }
    }
}

private final class EngineHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let box: StateBox
    let chunked: Bool

    init(box: StateBox, chunked: Bool) {
        self.box = box
        self.chunked = chunked
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let (status, body) = answer(head)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Api-Version", value: "1.43")
        if !chunked { headers.add(name: "Content-Length", value: String(body.count)) }
        context.write(
            wrapOutboundOut(
                .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))
            ),
            promise: nil
        )
        // Two writes, so a chunked answer has more than one chunk.
        let half = body.count / 2
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body.prefix(half))))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body.dropFirst(half))))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func answer(_ head: HTTPRequestHead) -> (Int, Data) {
        box.state.withLock { state in
            state.requests.append(head.uri)
            var segments = head.uri.split(separator: "/")
            if let first = segments.first, first.hasPrefix("v1.") { segments.removeFirst() }
            guard head.method == .GET, segments.count == 3, segments[0] == "containers", segments[2] == "json" else {
                return (404, Data(#"{"message":"page not found"}"#.utf8))
            }
            guard let container = state.containers[String(segments[1])] else {
                return (404, Data(#"{"message":"No such container: \#(segments[1])"}"#.utf8))
            }
            return (200, container.inspectJSON)
        }
    }
}
