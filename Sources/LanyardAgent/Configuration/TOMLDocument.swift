import Foundation

/// The part of TOML a Lanyard configuration uses: tables, arrays of tables, strings, integers, booleans and
/// arrays of those. Anything else (floats, dates, inline tables, multi-line strings, dotted keys) is refused with
/// its line number rather than half-understood.
final class TOMLTable {
    enum Value {
        case string(String)
        case integer(Int64)
        case bool(Bool)
        case array([Value])
        case table(TOMLTable)
        case tables([TOMLTable])

        var typeName: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .bool: "a boolean"
            case .array: "an array"
            case .table: "a table"
            case .tables: "an array of tables"
            }
        }
    }

    private(set) var values: [String: Value] = [:]
    private(set) var keys: [String] = []
    private(set) var lines: [String: Int] = [:]
    /// Whether a `[header]` defined this table explicitly (a second definition is an error).
    var isExplicit = false

    subscript(key: String) -> Value? { values[key] }

    func line(of key: String) -> Int? { lines[key] }

    fileprivate func set(_ key: String, _ value: Value, line: Int) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
        lines[key] = line
    }

    /// Parses a whole document.
    static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(text: text)
        return try parser.parse()
    }
}

/// A TOML syntax error with the line it is on.
struct TOMLError: Error, CustomStringConvertible {
    let line: Int
    let message: String

    var description: String { "line \(line): \(message)" }
}

private struct TOMLParser {
    let lines: [Substring]
    let root = TOMLTable()

    init(text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    mutating func parse() throws(TOMLError) -> TOMLTable {
        var current = root
        var index = 0
        while index < lines.count {
            let number = index + 1
            var statement = Self.stripComment(lines[index]).trimmed
            index += 1
            if statement.isEmpty { continue }
            // A value may span lines while brackets are open (multi-line arrays).
            while Self.openBrackets(in: statement) > 0 && index < lines.count {
                statement += " " + Self.stripComment(lines[index]).trimmed
                index += 1
            }
            if statement.hasPrefix("[[") {
                guard statement.hasSuffix("]]") else {
                    throw TOMLError(line: number, message: "malformed [[table]] header")
                }
                let path = try Self.keyPath(String(statement.dropFirst(2).dropLast(2)), line: number)
                current = try appendTable(at: path, line: number)
            } else if statement.hasPrefix("[") {
                guard statement.hasSuffix("]") else {
                    throw TOMLError(line: number, message: "malformed [table] header")
                }
                let path = try Self.keyPath(String(statement.dropFirst().dropLast()), line: number)
                current = try table(at: path, line: number, explicit: true)
            } else {
                guard let equals = Self.firstUnquoted("=", in: statement) else {
                    throw TOMLError(line: number, message: "expected key = value")
                }
                let keyText = String(statement[..<equals]).trimmed
                let path = try Self.keyPath(keyText, line: number)
                guard path.count == 1 else {
                    throw TOMLError(line: number, message: "dotted keys are not supported; use a [table] header")
                }
                let key = path[0]
                guard current[key] == nil else {
                    throw TOMLError(line: number, message: "key \"\(key)\" is defined twice")
                }
                var cursor = ValueCursor(
                    text: Array(String(statement[statement.index(after: equals)...]).utf8),
                    line: number
                )
                let value = try cursor.parseValue()
                try cursor.expectEnd()
                current.set(key, value, line: number)
            }
        }
        return root
    }

    private func table(at path: [String], line: Int, explicit: Bool) throws(TOMLError) -> TOMLTable {
        var table = root
        for (depth, key) in path.enumerated() {
            switch table[key] {
            case nil:
                let child = TOMLTable()
                table.set(key, .table(child), line: line)
                table = child
            case .table(let child)?:
                table = child
            case .tables(let children)?:
                guard let last = children.last else { throw TOMLError(line: line, message: "empty array of tables") }
                table = last
            case let other?:
                throw TOMLError(line: line, message: "\"\(key)\" is \(other.typeName), not a table")
            }
            if depth == path.count - 1 && explicit {
                guard !table.isExplicit else {
                    throw TOMLError(line: line, message: "table [\(path.joined(separator: "."))] is defined twice")
                }
                table.isExplicit = true
            }
        }
        return table
    }

    private func appendTable(at path: [String], line: Int) throws(TOMLError) -> TOMLTable {
        let parent = try table(at: Array(path.dropLast()), line: line, explicit: false)
        let key = path[path.count - 1]
        let child = TOMLTable()
        switch parent[key] {
        case nil: parent.set(key, .tables([child]), line: line)
        case .tables(let existing)?: parent.set(key, .tables(existing + [child]), line: line)
        case let other?: throw TOMLError(line: line, message: "\"\(key)\" is \(other.typeName), not an array of tables")
        }
        return child
    }

    static func keyPath(_ text: String, line: Int) throws(TOMLError) -> [String] {
        var keys: [String] = []
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            var key = part.trimmed
            if key.count >= 2, key.first == "\"", key.last == "\"" { key = String(key.dropFirst().dropLast()) }
            guard !key.isEmpty, key.utf8.allSatisfy({ isBareKeyByte($0) }) else {
                throw TOMLError(line: line, message: "invalid key \"\(text)\"")
            }
            keys.append(key)
        }
        return keys
    }

    static func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// Removes a `#` comment that is not inside a string.
    static func stripComment(_ line: Substring) -> String {
        guard let hash = firstUnquoted("#", in: String(line)) else { return String(line) }
        return String(String(line)[..<hash])
    }

    /// The positions of `text` that are outside string literals, in order.
    static func unquotedIndices(of text: String) -> [String.Index] {
        var indices: [String.Index] = []
        var quote: Character? = nil
        var escaped = false
        for index in text.indices {
            let character = text[index]
            if let open = quote {
                if escaped {
                    escaped = false
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else if character == open {
                    quote = nil
                }
            } else if character == "\"" || character == "'" {
                quote = character
            } else {
                indices.append(index)
            }
        }
        return indices
    }

    static func firstUnquoted(_ target: Character, in text: String) -> String.Index? {
        unquotedIndices(of: text).first { text[$0] == target }
    }

    static func openBrackets(in text: String) -> Int {
        // A table header line opens and closes on one line, so only values stay open.
        if text.hasPrefix("[") && !text.contains("=") { return 0 }
        return unquotedIndices(of: text).reduce(0) { depth, index in
            switch text[index] {
            case "[": depth + 1
            case "]": depth - 1
            default: depth
            }
        }
    }
}

/// Reads one value from the right-hand side of `key = value`.
private struct ValueCursor {
    let text: [UInt8]
    let line: Int
    var position = 0

    mutating func skipSpace() {
        while position < text.count, text[position] == UInt8(ascii: " ") || text[position] == UInt8(ascii: "\t") {
            position += 1
        }
    }

    func error(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    mutating func expectEnd() throws(TOMLError) {
        skipSpace()
        guard position == text.count else { throw error("unexpected text after the value") }
    }

    mutating func parseValue() throws(TOMLError) -> TOMLTable.Value {
        skipSpace()
        guard position < text.count else { throw error("missing value") }
        switch text[position] {
        case UInt8(ascii: "\""):
            if text[position...].starts(with: Array("\"\"\"".utf8)) {
                throw error("multi-line strings are not supported")
            }
            return .string(try parseBasicString())
        case UInt8(ascii: "'"):
            if text[position...].starts(with: Array("'''".utf8)) { throw error("multi-line strings are not supported") }
            position += 1
            guard let end = text[position...].firstIndex(of: UInt8(ascii: "'")) else {
                throw error("unterminated string")
            }
            defer { position = end + 1 }
            return .string(String(decoding: text[position..<end], as: UTF8.self))
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "{"):
            throw error("inline tables are not supported; use a [table] header")
        default:
            return try parseScalar()
        }
    }

    mutating func parseBasicString() throws(TOMLError) -> String {
        position += 1
        var bytes: [UInt8] = []
        while position < text.count {
            let byte = text[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: bytes, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < text.count else { throw error("unterminated escape") }
                let escape = text[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let width = escape == UInt8(ascii: "u") ? 4 : 8
                    guard position + width <= text.count,
                        let scalarValue = UInt32(
                            String(decoding: text[position..<position + width], as: UTF8.self),
                            radix: 16
                        ),
                        let scalar = Unicode.Scalar(scalarValue)
                    else { throw error("invalid unicode escape") }
                    bytes += Array(String(Character(scalar)).utf8)
                    position += width
                default:
                    throw error("invalid escape \\\(Character(Unicode.Scalar(escape)))")
                }
            default:
                guard byte >= 0x20 || byte == 0x09 else { throw error("control character in string") }
                bytes.append(byte)
            }
        }
        throw error("unterminated string")
    }

    mutating func parseArray() throws(TOMLError) -> TOMLTable.Value {
        position += 1
        var elements: [TOMLTable.Value] = []
        while true {
            skipSpace()
            guard position < text.count else { throw error("unterminated array") }
            if text[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            elements.append(try parseValue())
            skipSpace()
            guard position < text.count else { throw error("unterminated array") }
            if text[position] == UInt8(ascii: ",") {
                position += 1
            } else if text[position] != UInt8(ascii: "]") {
                throw error("expected , or ] in array")
            }
        }
    }

    mutating func parseScalar() throws(TOMLError) -> TOMLTable.Value {
        let start = position
        while position < text.count,
            ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: " "), UInt8(ascii: "\t")].contains(text[position])
        {
            position += 1
        }
        let token = String(decoding: text[start..<position], as: UTF8.self)
        switch token {
        case "true": return .bool(true)
        case "false": return .bool(false)
        default: break
        }
        let digits = token.replacingOccurrences(of: "_", with: "")
        if let integer = Int64(digits), !token.hasPrefix("_"), !token.hasSuffix("_"), !token.contains("__") {
            return .integer(integer)
        }
        if token.isEmpty { throw error("missing value") }
        throw error("unsupported value \"\(token)\" (strings need quotes; floats and dates are not used here)")
    }
}

extension StringProtocol {
    var trimmed: String {
        String(
            self.drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop {
                $0 == " " || $0 == "\t" || $0 == "\r"
            }.reversed()
        )
    }
}
