import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The one gRPC client that calls as the agent share, for the agent SVID and bundle it was made with.
///
/// A call with another SVID or bundle (the agent renewed, the bundle rotated) replaces it; the old client finishes
/// the calls it carries and closes. A failed call drops the client it used, so the next call connects afresh rather
/// than wait on a connection that may be broken or trust a server state that changed.
final class SharedClient: Sendable {
    /// What a connection presents and trusts: the agent SVID's leaf and the bundle's authorities.
    struct Key: Equatable, Sendable {
        var leaf: Data
        var authorities: [Data]
    }

    /// A client with its connections running.
    final class Open: Sendable {
        let key: Key
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        let verifier: ServerVerifier
        private let running: Task<Void, Never>

        init(key: Key, client: GRPCClient<HTTP2ClientTransport.Posix>, verifier: ServerVerifier) {
            self.key = key
            self.client = client
            self.verifier = verifier
            running = Task { try? await client.runConnections() }
        }

        /// Lets the calls in flight finish, then closes the connection.
        func close() {
            client.beginGracefulShutdown()
        }
    }

    private let current = Mutex<Open?>(nil)

    /// The open client for `key`, made with `make` (and the previous one closed) when the key changed.
    func client(
        for key: Key,
        make: () throws -> (GRPCClient<HTTP2ClientTransport.Posix>, ServerVerifier)
    ) throws -> Open {
        try current.withLock { current in
            if let open = current, open.key == key { return open }
            let (client, verifier) = try make()
            let open = Open(key: key, client: client, verifier: verifier)
            current?.close()
            current = open
            return open
        }
    }

    /// Drops `open` after a failed call (unless another call replaced it already) and closes it.
    func drop(_ open: Open) {
        current.withLock { current in
            if current === open { current = nil }
        }
        open.close()
    }

    deinit {
        current.withLock { $0?.close() }
    }

    func closeAll() {
        current.withLock { current in
            current?.close()
            current = nil
        }
    }
}
