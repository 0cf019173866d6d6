import GRPCCore
import Logging
import SPIFFE

/// Finds the caller a call came from (the connection's, pinned at accept by ``PeerCredentialHandler``), attests it,
/// and turns backend failures into gRPC status codes. Shared by the Workload API and SDS handlers: the one place
/// where both choose status codes, with SPIRE's choices.
struct CallerAuthenticator: Sendable {
    let backend: any WorkloadAPIBackend
    let callers: ConnectedCallers
    let logger: Logger

    /// Reads the private header (failing closed without it) and attests the connection's caller.
    func authenticate(_ metadata: Metadata) async throws -> AttestedCaller {
        let values = Array(metadata[stringValues: PeerCredentialHandler.headerName])
        guard values.count == 1, let number = PeerCredentialHandler.parse(values[0]),
            let caller = callers.caller(number: number)
        else {
            logger.error("call without kernel peer credentials refused")
            throw RPCError(code: .unauthenticated, message: "caller credentials are unavailable")
        }
        return try await mapErrors { try await backend.attest(caller) }
    }

    /// Checks, before a stream sends another message, that its caller is still the process that connected.
    func reverify(_ caller: AttestedCaller) throws {
        do {
            try caller.pin.verify()
        } catch {
            throw Self.rpcError(error, logger: logger)
        }
    }

    /// Runs `body`, mapping ``WorkloadAPIError`` kinds to status codes and hiding anything else.
    func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.rpcError(error, logger: logger)
        }
    }

    private static func rpcError(_ error: any Error, logger: Logger) -> RPCError {
        switch error {
        case let error as WorkloadAPIError:
            let code: RPCError.Code =
                switch error.code {
                case .noIdentity: .permissionDenied
                case .attestationFailed, .unavailable: .unavailable
                case .callerGone, .callerChanged: .unauthenticated
                case .invalidRequest: .invalidArgument
                }
            return RPCError(code: code, message: error.message)
        case let error as RPCError:
            return error
        default:
            logger.error("backend failed", metadata: [LogKey.error: "\(error)"])
            return RPCError(code: .internalError, message: "internal error")
        }
    }
}
