import Foundation
import GRPCCore
import Metrics
import SPIFFE
import Synchronization

/// Counts every RPC by method and status code and times it, through swift-metrics (the agent picks the backend),
/// and keeps the calls open now by method (``OpenCalls``, for `lanyard status`).
///
/// For unary calls the time is the whole call; for streams it is the time to accept the stream (attestation and
/// the first snapshot), and the status is counted when the stream ends.
struct MetricsInterceptor: ServerInterceptor {
    let openCalls: OpenCalls

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.method
        let started = ContinuousClock.now
        defer {
            Timer(label: "lanyard_rpc_duration_seconds", dimensions: [("method", method)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
        let response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            Self.count(method, error)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            Self.count(method, error)
            return response
        case .success(let contents):
            var counted = contents
            let producer = contents.producer
            let openCalls = openCalls
            counted.producer = { writer in
                openCalls.opened(method)
                defer { openCalls.closed(method) }
                do {
                    let trailers = try await producer(writer)
                    Self.count(method, nil)
                    return trailers
                } catch {
                    Self.count(method, error)
                    throw error
                }
            }
            return StreamingServerResponse(accepted: .success(counted))
        }
    }

    static func count(_ method: String, _ error: (any Error)?) {
        let code: String
        if let error {
            code = (error as? RPCError).map { "\($0.code)" } ?? "unknown"
        } else {
            code = "ok"
        }
        Counter(label: "lanyard_rpc_requests_total", dimensions: [("method", method), ("code", code)]).increment()
    }
}

/// The calls being answered now, by method name (`FetchX509SVID`, `StreamSecrets`…): open streams, mostly.
final class OpenCalls: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func opened(_ method: String) { counts.withLock { $0[method, default: 0] += 1 } }

    func closed(_ method: String) {
        counts.withLock { counts in
            let left = counts[method, default: 0] - 1
            counts[method] = left > 0 ? left : nil
        }
    }

    var current: [String: Int] { counts.withLock { $0 } }
}
