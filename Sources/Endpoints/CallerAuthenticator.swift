import GRPCCore
import Logging

/// Turns the kernel credentials that ``PeerCredentialHandler`` put in a call's metadata into an attested caller,
/// and backend failures into gRPC status codes. Shared by the Workload API and SDS handlers: the one place where
/// both choose status codes, with SPIRE's choices.
struct CallerAuthenticator: Sendable {
    let backend: any WorkloadAPIBackend
    let logger: Logger

    /// Reads the private header (failing closed without it) and attests the caller.
    func authenticate(_ metadata: Metadata) async throws -> AttestedCaller {
        let values = Array(metadata[stringValues: PeerCredentialHandler.headerName])
        guard values.count == 1, let credentials = PeerCredentialHandler.parse(values[0]) else {
            logger.error("call without kernel peer credentials refused")
            throw RPCError(code: .unauthenticated, message: "caller credentials are unavailable")
        }
        return try await mapErrors { try await backend.attest(credentials) }
    }

    /// Runs `body`, mapping ``WorkloadAPIError`` kinds to status codes and hiding anything else.
    func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as WorkloadAPIError {
            let code: RPCError.Code =
                switch error.kind {
                case .noIdentity: .permissionDenied
                case .attestationFailed, .unavailable: .unavailable
                case .callerGone: .unauthenticated
                case .invalidRequest: .invalidArgument
                }
            throw RPCError(code: code, message: error.message)
        } catch let error as RPCError {
            throw error
        } catch {
            logger.error("backend failed", metadata: ["error": "\(error)"])
            throw RPCError(code: .internalError, message: "internal error")
        }
    }
}
