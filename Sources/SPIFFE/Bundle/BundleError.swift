/// Why a SPIFFE bundle document could not be read.
public struct BundleError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { "bundle: \(message)" }
}
