import NIOCore
import Synchronization

/// The caller of every open connection, pinned when it was accepted, so that each call on the connection is
/// answered for that caller. Streams find their connection's caller through it, and a call finds it by the number
/// ``PeerCredentialHandler`` writes into the call's private header. It also knows which connections have no call
/// open, and since when, for ``closeWhenIdle(_:after:)``.
final class ConnectedCallers: Sendable {
    private struct Connection {
        let number: UInt64
        var openCalls = 0
        var idleSince: NIODeadline? = .now()
    }

    private struct State {
        var byNumber: [UInt64: ConnectedCaller] = [:]
        var connections: [ObjectIdentifier: Connection] = [:]
        var next: UInt64 = 1
    }

    private let state = Mutex(State())

    /// Records the caller of `connection` (a channel object, alive until ``remove(connection:)``) and returns its
    /// number.
    @discardableResult
    func add(_ caller: ConnectedCaller, connection: ObjectIdentifier) -> UInt64 {
        state.withLock { state in
            let number = state.next
            state.next += 1
            state.byNumber[number] = caller
            state.connections[connection] = Connection(number: number)
            return number
        }
    }

    /// Forgets a connection that closed. A call still running keeps its caller (and the pin's pidfd) until it ends.
    func remove(connection: ObjectIdentifier) {
        state.withLock { state in
            if let number = state.connections.removeValue(forKey: connection)?.number {
                state.byNumber[number] = nil
            }
        }
    }

    func number(of connection: ObjectIdentifier) -> UInt64? {
        state.withLock { $0.connections[connection]?.number }
    }

    func caller(number: UInt64) -> ConnectedCaller? {
        state.withLock { $0.byNumber[number] }
    }

    var count: Int { state.withLock { $0.byNumber.count } }

    /// A call opened (`opened`) or ended on `connection`.
    func callChanged(on connection: ObjectIdentifier, opened: Bool) {
        state.withLock { state in
            guard var entry = state.connections[connection] else { return }
            entry.openCalls += opened ? 1 : -1
            entry.idleSince = entry.openCalls > 0 ? nil : .now()
            state.connections[connection] = entry
        }
    }

    /// Whether `connection` has had no call open for `timeout`.
    func isIdle(_ connection: ObjectIdentifier, for timeout: TimeAmount) -> Bool {
        state.withLock { state in
            guard let since = state.connections[connection]?.idleSince else { return false }
            return NIODeadline.now() - since >= timeout
        }
    }

    /// Closes `channel` once it has had no call open for `timeout`, checked a few times per timeout. gRPC's own idle
    /// handling sends a GOAWAY and waits for the client to acknowledge it, which a client that never reads never does;
    /// this closes the socket regardless.
    func closeWhenIdle(_ channel: any Channel, after timeout: TimeAmount) {
        let connection = ObjectIdentifier(channel)
        let interval = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 50_000_000))
        let check = channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            if isIdle(connection, for: timeout) { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in check.cancel() }
    }
}
