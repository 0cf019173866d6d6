/// What an SDS stream's state machine reacts to: a request from Envoy, or a change in what the caller may see.
enum SDSEvent<Request> {
    case request(Request)
    case update(WorkloadUpdate)
}

/// What a state machine asks its handler to do.
enum SDSAction<Response: Equatable>: Equatable {
    case send(Response)
    /// Envoy rejected the response of `version` (empty for delta streams, which carry none).
    case nack(version: String, detail: String)
}

/// Why an SDS stream ends with an error: a name the caller may not see (`INVALID_ARGUMENT`), or a response that
/// could not be encoded.
enum SDSStreamError: Error, Equatable {
    case unauthorized([String])
    case encoding(String)
}

/// One SDS stream's rules as a value (``SecretStream``, ``DeltaSecretStream``): events in, actions out, so the
/// rules are unit-tested without a socket and ``SDSHandler`` only moves messages.
protocol SDSStreamMachine {
    associatedtype Request
    associatedtype Response: Equatable

    mutating func handle(_ event: SDSEvent<Request>) throws(SDSStreamError) -> [SDSAction<Response>]
}
