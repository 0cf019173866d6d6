import Foundation

/// Blocking work of an attestor (a D-Bus call, an HTTP exchange on a socket) run on a dispatch thread, never on one
/// of the few threads of Swift's cooperative pool that every caller's attestation shares: a slow systemd or
/// container runtime then delays only the callers that need it.
enum BlockingCall {
    static func run<Value: Sendable>(
        _ body: @escaping @Sendable () throws(AttestationError) -> Value
    ) async throws(AttestationError) -> Value {
        let result: Result<Value, AttestationError> = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(returning: Result { () throws(AttestationError) in try body() })
            }
        }
        return try result.get()
    }
}
