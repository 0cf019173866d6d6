import Synchronization

/// The caller of every open connection, pinned when it was accepted, so that each call on the connection is
/// answered for that caller. Streams find their connection's caller through it, and a call finds it by the number
/// ``PeerCredentialHandler`` writes into the call's private header.
final class ConnectedCallers: Sendable {
    private struct State {
        var byNumber: [UInt64: ConnectedCaller] = [:]
        var numberByConnection: [ObjectIdentifier: UInt64] = [:]
        var next: UInt64 = 1
    }

    private let state = Mutex(State())

    /// Records the caller of `connection` (a channel object, alive until ``remove(connection:)``) and returns its
    /// number.
    func add(_ caller: ConnectedCaller, connection: ObjectIdentifier) -> UInt64 {
        state.withLock { state in
            let number = state.next
            state.next += 1
            state.byNumber[number] = caller
            state.numberByConnection[connection] = number
            return number
        }
    }

    /// Forgets a connection that closed. A call still running keeps its caller (and the pin's pidfd) until it ends.
    func remove(connection: ObjectIdentifier) {
        state.withLock { state in
            if let number = state.numberByConnection.removeValue(forKey: connection) {
                state.byNumber[number] = nil
            }
        }
    }

    func number(of connection: ObjectIdentifier) -> UInt64? {
        state.withLock { $0.numberByConnection[connection] }
    }

    func caller(number: UInt64) -> ConnectedCaller? {
        state.withLock { $0.byNumber[number] }
    }

    var count: Int { state.withLock { $0.byNumber.count } }
}
