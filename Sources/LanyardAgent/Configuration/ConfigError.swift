/// Everything wrong with a configuration file, each problem under the key it concerns.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        public let key: String
        public let message: String

        public var description: String { key.isEmpty ? message : "\(key): \(message)" }
    }

    public let path: String
    public let problems: [Problem]

    public var description: String {
        (["invalid configuration \(path):"] + problems.map { "  \($0)" }).joined(separator: "\n")
    }
}
