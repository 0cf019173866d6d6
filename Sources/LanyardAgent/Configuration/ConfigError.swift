/// Everything wrong with a configuration file, each problem under the key it concerns and with its line.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        public let key: String
        public let message: String
        /// The line of the key (or of the syntax error), when known.
        public let line: Int?

        public init(key: String, message: String, line: Int? = nil) {
            self.key = key
            self.message = message
            self.line = line
        }

        public var description: String {
            (key.isEmpty ? message : "\(key): \(message)") + (line.map { " (line \($0))" } ?? "")
        }
    }

    public let path: String
    public let problems: [Problem]

    public var description: String {
        (["invalid configuration \(path):"] + problems.map { "  \($0)" }).joined(separator: "\n")
    }
}
