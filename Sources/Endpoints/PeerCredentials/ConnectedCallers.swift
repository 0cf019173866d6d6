import NIOCore
import Synchronization

/// The caller of every open connection, pinned when it was accepted, so that each call on the connection is
/// answered for that caller. Streams find their connection's caller through it, and a call finds it by the number
/// ``PeerCredentialHandler`` writes into the call's private header. It also knows which connections have no call
/// open, and since when, for ``closeWhenIdle(_:after:)``.
final class ConnectedCallers: Sendable {
    private struct State {
        var byNumber: [UInt64: ConnectedCaller] = [:]
        var numbers: [ObjectIdentifier: UInt64] = [:]
        var next: UInt64 = 1
    }

    private let state = Mutex(State())
    private let activity = IdleConnections()

    /// Records the caller of `connection` (a channel object, alive until ``remove(connection:)``) and returns its
    /// number.
    @discardableResult
    func add(_ caller: ConnectedCaller, connection: ObjectIdentifier) -> UInt64 {
        state.withLock { state in
            let number = state.next
            state.next += 1
            state.byNumber[number] = caller
            state.numbers[connection] = number
            return number
        }
    }

    /// Forgets a connection that closed. A call still running keeps its caller (and the pin's pidfd) until it ends.
    func remove(connection: ObjectIdentifier) {
        state.withLock { state in
            if let number = state.numbers.removeValue(forKey: connection) {
                state.byNumber[number] = nil
            }
        }
    }

    func number(of connection: ObjectIdentifier) -> UInt64? {
        state.withLock { $0.numbers[connection] }
    }

    func caller(number: UInt64) -> ConnectedCaller? {
        state.withLock { $0.byNumber[number] }
    }

    var count: Int { state.withLock { $0.byNumber.count } }

    /// Counts the call on `stream` as open on its connection until the stream closes.
    func countCall(on stream: any Channel) {
        activity.countCall(on: stream)
    }

    /// Closes `channel` once it has had no call open for `timeout` (see ``IdleConnections``).
    func closeWhenIdle(_ channel: any Channel, after timeout: TimeAmount) {
        activity.watch(channel, closingAfter: timeout)
    }
}
