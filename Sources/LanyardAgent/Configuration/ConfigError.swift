/// Everything wrong with a configuration file, each problem under the key it concerns and with its line.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        public let key: String
        public let message: String
        /// The line of the key (or of the syntax error), when known.
        public let line: Int?
        /// The column of a syntax error.
        public let column: Int?

        public init(key: String, message: String, line: Int? = nil, column: Int? = nil) {
            self.key = key
            self.message = message
            self.line = line
            self.column = column
        }

        public var description: String {
            let position = line.map { line in " (line \(line)" + (column.map { ", column \($0)" } ?? "") + ")" } ?? ""
            return (key.isEmpty ? message : "\(key): \(message)") + position
        }
    }

    public let path: String
    public let problems: [Problem]

    public var description: String {
        (["invalid configuration \(path):"] + problems.map { "  \($0)" }).joined(separator: "\n")
    }
}
