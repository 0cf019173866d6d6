import NIOCore
import Synchronization

/// Which connections have had no call open, and since when, closing those idle longer than a timeout. gRPC's own
/// idle handling asks the client to go away and waits for it to, which a client that never reads never does, and
/// over TLS its timer only starts once a first call has ended; this closes the socket regardless.
final class IdleConnections: Sendable {
    private struct Activity {
        var openCalls = 0
        var idleSince: NIODeadline? = .now()
    }

    private let connections = Mutex<[ObjectIdentifier: Activity]>([:])

    /// Follows `channel` from now until it closes; with a `timeout`, closes it once it has had no call open for that
    /// long (checked a few times per timeout).
    func watch(_ channel: any Channel, closingAfter timeout: TimeAmount?) {
        let connection = ObjectIdentifier(channel)
        connections.withLock { $0[connection] = Activity() }
        let check = timeout.map { timeout in
            let interval = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 50_000_000))
            return channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
                if isIdle(connection, for: timeout) { channel.close(promise: nil) }
            }
        }
        channel.closeFuture.whenComplete { [self] _ in
            check?.cancel()
            connections.withLock { $0[connection] = nil }
        }
    }

    /// A call opened (`opened`) or ended on `connection`.
    func callChanged(on connection: ObjectIdentifier, opened: Bool) {
        connections.withLock { connections in
            guard var activity = connections[connection] else { return }
            activity.openCalls += opened ? 1 : -1
            activity.idleSince = activity.openCalls > 0 ? nil : .now()
            connections[connection] = activity
        }
    }

    /// Counts the call on `stream` (an HTTP/2 stream channel) as open on its connection until the stream closes.
    func countCall(on stream: any Channel) {
        guard let connection = stream.parent.map(ObjectIdentifier.init) else { return }
        callChanged(on: connection, opened: true)
        stream.closeFuture.whenComplete { [self] _ in callChanged(on: connection, opened: false) }
    }

    /// Whether `connection` has had no call open for `timeout`.
    func isIdle(_ connection: ObjectIdentifier, for timeout: TimeAmount) -> Bool {
        connections.withLock { connections in
            guard let since = connections[connection]?.idleSince else { return false }
            return NIODeadline.now() - since >= timeout
        }
    }
}
