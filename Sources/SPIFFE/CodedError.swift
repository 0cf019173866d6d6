/// The kinds of failure one module reports; each module defines its own (a struct of static members that can grow,
/// or an enum when every kind must be handled).
public protocol ErrorCode: Hashable, Sendable, CustomStringConvertible {}

/// The one shape of Lanyard's errors: a code saying what kind of failure, a message fit for a log (never a key or a
/// token), the error it wraps, and where it was raised. Two errors are equal when their codes are, so tests and
/// callers match on kinds, not wording. Each module names its own: `AttestationError`, `UpstreamError`,
/// `CryptoError`, `WorkloadAPIError`.
public struct CodedError<Code: ErrorCode>: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Code
    public let message: String
    /// The failure underneath (an RPC status, OpenSSL's error queue), shown after the message.
    public let cause: (any Error)?
    /// `Module/File.swift:line` of the throw, for debugging; not shown to callers.
    public let location: String

    public init(
        _ code: Code,
        _ message: String,
        cause: (any Error)? = nil,
        file: StaticString = #fileID,
        line: UInt = #line
    ) {
        self.code = code
        self.message = message
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    public var description: String { cause.map { "\(message) (\($0))" } ?? message }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension CodedError {
    /// Runs `body`; an error of this kind passes through unchanged and any other becomes `code` with `message`, the
    /// original kept as its cause. One place for the "rethrow ours, wrap the rest" pair of catch clauses.
    public static func wrapping<Value>(
        _ code: Code,
        _ message: @autoclosure () -> String,
        file: StaticString = #fileID,
        line: UInt = #line,
        _ body: () throws -> Value
    ) throws(Self) -> Value {
        do {
            return try body()
        } catch let error as Self {
            throw error
        } catch {
            throw Self(code, message(), cause: error, file: file, line: line)
        }
    }

    /// `wrapping` for an asynchronous body.
    public static func wrapping<Value>(
        _ code: Code,
        _ message: @autoclosure () -> String,
        file: StaticString = #fileID,
        line: UInt = #line,
        _ body: () async throws -> Value
    ) async throws(Self) -> Value {
        do {
            return try await body()
        } catch let error as Self {
            throw error
        } catch {
            throw Self(code, message(), cause: error, file: file, line: line)
        }
    }
}
