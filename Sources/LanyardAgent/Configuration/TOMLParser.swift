/// A TOML 1.0 parser: UTF-8 bytes in, a ``ConfigTable`` tree and the line of every key out.
///
/// Every form of the specification is read — dotted and quoted keys, inline tables, arrays of tables, basic,
/// literal and multi-line strings with every escape, hex/octal/binary integers with `_` separators, floats,
/// booleans, dates and times — and every rule about defining a key or table twice is enforced. Written here rather
/// than taken from TOMLKit: its toml++ asserts on malformed input such as `[` followed by a newline (an abort in
/// debug builds, undefined behaviour through `__builtin_assume` in release ones), and a configuration parser must
/// refuse bad input with a message, never take the agent down with it. It is iterative where input can nest
/// (arrays and inline tables are bounded to a depth of 64), so no input exhausts the stack.
struct TOMLParser {
    /// A syntax error at a position (1-based line and column).
    struct Failure: Error, Equatable, CustomStringConvertible {
        let line: Int
        let column: Int
        let message: String

        var description: String { "line \(line), column \(column): \(message)" }
    }

    /// The parsed document.
    struct Document {
        let root: ConfigTable
        /// The line of every key and table, by path (`workload_api.socket_path`, `entries[1].selectors`).
        let keyLines: [String: Int]
    }

    static let maximumDepth = 64

    static func parse(_ bytes: [UInt8]) throws(Failure) -> Document {
        var parser = TOMLParser(bytes: bytes)
        try parser.parseDocument()
        return Document(root: parser.root.freezeTable(), keyLines: parser.keyLines)
    }

    // MARK: - The tree while it is built

    /// A table or array of tables under construction, with what the rules about redefinition need to know.
    private final class Node {
        enum Origin {
            /// Created as the parent of a header (`[a.b]` creates `a`); may still be defined by its own header.
            case implicit
            /// Defined by a `[header]`.
            case header
            /// Created by a dotted key (`a.b = 1` creates `a`); may be extended by more dotted keys only.
            case dotted
            /// An inline table `{ … }`: complete as written.
            case inline
        }

        var values: [String: Entry] = [:]
        var origin: Origin
        /// The path of this table, for key lines (`entries[1]`).
        let path: String

        init(origin: Origin, path: String) {
            self.origin = origin
            self.path = path
        }

        enum Entry {
            case value(ConfigValue)
            case table(Node)
            /// `[[name]]`; `isStatic` for an array written as a value (`name = [ {…} ]`), which cannot be appended to.
            case tables([Node], isStatic: Bool)
        }

        func freezeTable() -> ConfigTable {
            var table = ConfigTable()
            for (key, entry) in values {
                switch entry {
                case .value(let value): table.values[key] = value
                case .table(let node): table.values[key] = .table(node.freezeTable())
                case .tables(let nodes, _): table.values[key] = .array(nodes.map { .table($0.freezeTable()) })
                }
            }
            return table
        }
    }

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private var lineStart = 0
    private let root = Node(origin: .header, path: "")
    private var current: Node
    private var keyLines: [String: Int] = [:]

    private init(bytes: [UInt8]) {
        self.bytes = bytes
        current = root
    }

    // MARK: - Errors and positions

    private func failure(_ message: String, at position: Int? = nil) -> Failure {
        let at = position ?? index
        // The column counts characters (UTF-8 lead bytes), not bytes.
        let column = bytes[lineStart..<min(max(at, lineStart), bytes.count)].filter { $0 & 0xC0 != 0x80 }.count + 1
        return Failure(line: line, column: column, message: message)
    }

    private var atEnd: Bool { index >= bytes.count }
    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func peek(_ offset: Int) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private static func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "the end of the file" }
        switch byte {
        case 0x0A: return "a newline"
        case 0x0D: return "a carriage return"
        case 0x20...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        default: return "byte 0x\(String(byte, radix: 16))"
        }
    }

    // MARK: - Document structure

    private mutating func parseDocument() throws(Failure) {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }  // a UTF-8 byte order mark
        while !atEnd {
            skipWhitespace()
            guard let byte = peek else { break }
            switch byte {
            case UInt8(ascii: "#"), 0x0A, 0x0D:
                break
            case UInt8(ascii: "["):
                try parseHeader()
            default:
                try parseKeyValue(into: current, pathPrefix: current.path)
            }
            try expectLineEnd()
        }
    }

    /// Whitespace and a comment, then a newline or the end of the file.
    private mutating func expectLineEnd() throws(Failure) {
        skipWhitespace()
        if peek == UInt8(ascii: "#") { try skipComment() }
        guard let byte = peek else { return }
        if byte == 0x0A {
            newline()
        } else if byte == 0x0D && peek(1) == 0x0A {
            index += 1
            newline()
        } else {
            throw failure("expected the end of the line, found \(Self.describe(byte))")
        }
    }

    private mutating func newline() {
        index += 1
        line += 1
        lineStart = index
    }

    private mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 { index += 1 }
    }

    /// Whitespace, newlines and comments (inside arrays).
    private mutating func skipWhitespaceNewlinesAndComments() throws(Failure) {
        while let byte = peek {
            switch byte {
            case 0x20, 0x09: index += 1
            case 0x0A: newline()
            case 0x0D where peek(1) == 0x0A:
                index += 1
                newline()
            case UInt8(ascii: "#"): try skipComment()
            default: return
            }
        }
    }

    private mutating func skipComment() throws(Failure) {
        index += 1
        while let byte = peek, byte != 0x0A {
            if byte == 0x0D && peek(1) == 0x0A { return }
            if (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                throw failure("control character \(Self.describe(byte)) in a comment")
            }
            if byte >= 0x80 { _ = try utf8Scalar() } else { index += 1 }
        }
    }

    // MARK: - Headers

    /// Adds one more table to the array of tables `name` of `node`. The array is taken out of the node before it
    /// grows, so it grows in place: re-creating it for every header made 10,000 `[[entries]]` quadratic to read.
    private mutating func appendTable(to node: Node, name: String, fullPath: String, line: Int) -> Node {
        guard let removed = node.values.removeValue(forKey: name),
            case .tables(var children, let isStatic) = consume removed
        else { preconditionFailure("checked by the caller") }
        let child = Node(origin: .header, path: fullPath + "[\(children.count)]")
        children.append(child)
        node.values[name] = .tables(children, isStatic: isStatic)
        record(child.path, line: line)
        return child
    }

    private mutating func parseHeader() throws(Failure) {
        let headerLine = line
        index += 1
        let isArray = peek == UInt8(ascii: "[")
        if isArray { index += 1 }
        skipWhitespace()
        let keys = try parseKey()
        skipWhitespace()
        guard peek == UInt8(ascii: "]") else {
            throw failure(
                "expected ']' to close the \(isArray ? "[[array]]" : "[table]") header, found \(Self.describe(peek))"
            )
        }
        index += 1
        if isArray {
            guard peek == UInt8(ascii: "]") else { throw failure("expected ']]' to close the [[array]] header") }
            index += 1
        }
        // Walk to the parent, creating implicit tables; the last element of an array of tables is the parent.
        var node = root
        var path = ""
        for key in keys.dropLast() {
            path = Self.join(path, key)
            switch node.values[key] {
            case nil:
                let child = Node(origin: .implicit, path: path)
                node.values[key] = .table(child)
                record(path, line: headerLine)
                node = child
            case .table(let child)?:
                guard child.origin != .inline else {
                    throw failure("table \(path) is an inline table; it cannot be extended")
                }
                node = child
            case .tables(let children, let isStatic)?:
                guard !isStatic, let last = children.last else {
                    throw failure("\(path) is an array of values; it cannot hold tables")
                }
                path = last.path
                node = last
            case .value?:
                throw failure("\(path) is a value, not a table")
            }
        }
        let name = keys[keys.count - 1]
        let fullPath = Self.join(path, name)
        if isArray {
            var appending = false
            switch node.values[name] {
            case nil:
                let child = Node(origin: .header, path: fullPath + "[0]")
                node.values[name] = .tables([child], isStatic: false)
                record(fullPath, line: headerLine)
                record(child.path, line: headerLine)
                current = child
            case .tables(_, false)?:
                // Appended after the switch, whose copy of the array would make it shared.
                appending = true
            default:
                throw failure("\(fullPath) is already defined, and not as an array of tables")
            }
            if appending { current = appendTable(to: node, name: name, fullPath: fullPath, line: headerLine) }
        } else {
            switch node.values[name] {
            case nil:
                let child = Node(origin: .header, path: fullPath)
                node.values[name] = .table(child)
                record(fullPath, line: headerLine)
                current = child
            case .table(let child)? where child.origin == .implicit:
                child.origin = .header
                keyLines[fullPath] = headerLine
                current = child
            default:
                throw failure("table \(fullPath) is defined twice")
            }
        }
    }

    // MARK: - Keys and values

    /// `key = value` into `table` (a document table, or the inline table `inline` names); dotted keys create (or
    /// extend) tables defined by dotted keys.
    private mutating func parseKeyValue(
        into table: Node,
        pathPrefix: String,
        depth: Int = 0,
        inline: String? = nil
    ) throws(Failure) {
        let keyLine = line
        let keys = try parseKey()
        skipWhitespace()
        guard peek == UInt8(ascii: "=") else {
            if let inline { throw failure("expected '=' in the inline table \(inline)") }
            throw failure("expected '=' after the key \(keys.joined(separator: ".")), found \(Self.describe(peek))")
        }
        index += 1
        skipWhitespace()
        var node = table
        var path = pathPrefix
        for key in keys.dropLast() {
            path = Self.join(path, key)
            switch node.values[key] {
            case nil:
                let child = Node(origin: .dotted, path: path)
                node.values[key] = .table(child)
                record(path, line: keyLine)
                node = child
            case .table(let child)? where child.origin == .dotted:
                node = child
            default:
                if inline != nil { throw failure("\(path) is already defined in the inline table") }
                throw failure("\(path) is already defined; a dotted key cannot add to it")
            }
        }
        let name = keys[keys.count - 1]
        let fullPath = Self.join(path, name)
        guard node.values[name] == nil else { throw failure("key \(fullPath) is defined twice") }
        record(fullPath, line: keyLine)
        node.values[name] = try parseValue(path: fullPath, depth: depth)
    }

    /// A key: bare, quoted or literal parts joined by dots.
    private mutating func parseKey() throws(Failure) -> [String] {
        var parts: [String] = []
        while true {
            skipWhitespace()
            guard let byte = peek else { throw failure("expected a key, found the end of the file") }
            switch byte {
            case UInt8(ascii: "\""):
                if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
                    throw failure("a key cannot be a multi-line string")
                }
                parts.append(try parseBasicString())
            case UInt8(ascii: "'"):
                if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                    throw failure("a key cannot be a multi-line string")
                }
                parts.append(try parseLiteralString())
            default:
                let start = index
                while let byte = peek, Self.isBareKeyByte(byte) { index += 1 }
                guard index > start else { throw failure("expected a key, found \(Self.describe(byte))") }
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ".") else { return parts }
            index += 1
        }
    }

    private static func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    private mutating func parseValue(path: String, depth: Int) throws(Failure) -> Node.Entry {
        guard depth < Self.maximumDepth else { throw failure("values are nested deeper than \(Self.maximumDepth)") }
        guard let byte = peek else { throw failure("expected a value, found the end of the file") }
        switch byte {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
                return .value(.string(try parseMultilineString(quote: UInt8(ascii: "\""), escapes: true)))
            }
            return .value(.string(try parseBasicString()))
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                return .value(.string(try parseMultilineString(quote: UInt8(ascii: "'"), escapes: false)))
            }
            return .value(.string(try parseLiteralString()))
        case UInt8(ascii: "["):
            return try parseArray(path: path, depth: depth)
        case UInt8(ascii: "{"):
            return .table(try parseInlineTable(path: path, depth: depth))
        case UInt8(ascii: "t") where bytes[index...].starts(with: Array("true".utf8)):
            index += 4
            return .value(.bool(true))
        case UInt8(ascii: "f") where bytes[index...].starts(with: Array("false".utf8)):
            index += 5
            return .value(.bool(false))
        default:
            return .value(try parseNumberOrDate())
        }
    }

    private mutating func parseArray(path: String, depth: Int) throws(Failure) -> Node.Entry {
        index += 1
        var values: [ConfigValue] = []
        var tables: [Node] = []
        var count = 0
        while true {
            try skipWhitespaceNewlinesAndComments()
            if peek == UInt8(ascii: "]") {
                index += 1
                break
            }
            let element = try parseValue(path: "\(path)[\(count)]", depth: depth + 1)
            switch element {
            case .value(let value): values.append(value)
            case .table(let node): tables.append(node)
            case .tables(let nodes, _): values.append(.array(nodes.map { .table($0.freezeTable()) }))
            }
            count += 1
            try skipWhitespaceNewlinesAndComments()
            if peek == UInt8(ascii: ",") {
                index += 1
            } else if peek == UInt8(ascii: "]") {
                index += 1
                break
            } else {
                throw failure("expected ',' or ']' in the array \(path), found \(Self.describe(peek))")
            }
        }
        // An array of only inline tables keeps its tables (so `[[…]]` can refuse to extend it); a mixed one is
        // values, the tables frozen in place.
        if values.isEmpty && !tables.isEmpty { return .tables(tables, isStatic: true) }
        if tables.isEmpty { return .value(.array(values)) }
        return .value(.array(values + tables.map { .table($0.freezeTable()) }))
    }

    private mutating func parseInlineTable(path: String, depth: Int) throws(Failure) -> Node {
        index += 1
        let table = Node(origin: .inline, path: path)
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return table
        }
        while true {
            skipWhitespace()
            if peek == 0x0A || peek == 0x0D { throw failure("the inline table \(path) must fit on one line") }
            // Inside, dotted keys build sub-tables of this inline table.
            try parseKeyValue(into: table, pathPrefix: path, depth: depth + 1, inline: path)
            skipWhitespace()
            if peek == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
                if peek == UInt8(ascii: "}") { throw failure("an inline table cannot end with a ','") }
            } else if peek == UInt8(ascii: "}") {
                index += 1
                break
            } else {
                if peek == 0x0A || peek == 0x0D { throw failure("the inline table \(path) must fit on one line") }
                throw failure("expected ',' or '}' in the inline table \(path), found \(Self.describe(peek))")
            }
        }
        // Complete as written: later keys and headers cannot add to it, nor to its dotted sub-tables.
        func close(_ node: Node) {
            node.origin = .inline
            for case .table(let child) in node.values.values { close(child) }
        }
        close(table)
        return table
    }

    // MARK: - Strings

    /// One UTF-8 encoded scalar at `index`, validated (no overlong forms, surrogates or values past U+10FFFF).
    private mutating func utf8Scalar() throws(Failure) -> Unicode.Scalar {
        let lead = bytes[index]
        let (count, minimum): (Int, UInt32) =
            switch lead {
            case 0x00...0x7F: (1, 0)
            case 0xC2...0xDF: (2, 0x80)
            case 0xE0...0xEF: (3, 0x800)
            case 0xF0...0xF4: (4, 0x10000)
            default: (0, 0)
            }
        guard count > 0, index + count <= bytes.count else { throw failure("invalid UTF-8") }
        var value = count == 1 ? UInt32(lead) : UInt32(lead) & (0xFF >> (count + 1))
        for offset in 1..<count {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { throw failure("invalid UTF-8") }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { throw failure("invalid UTF-8") }
        index += count
        return scalar
    }

    /// Whether a scalar may appear literally in a string (tab, and no other control character).
    private static func isAllowedInString(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || (scalar.value >= 0x20 && scalar.value != 0x7F)
    }

    private mutating func parseBasicString() throws(Failure) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        while true {
            guard let byte = peek else { throw failure("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(scalars)
            case UInt8(ascii: "\\"):
                scalars.append(try parseEscape())
            case 0x0A, 0x0D:
                throw failure("unterminated string (a basic string ends on its line; use \"\"\" for several)")
            default:
                let scalar = try utf8Scalar()
                guard Self.isAllowedInString(scalar) else {
                    index -= 1
                    throw failure("control character \(Self.describe(byte)) in a string; escape it")
                }
                scalars.append(scalar)
            }
        }
    }

    private mutating func parseEscape() throws(Failure) -> Unicode.Scalar {
        let start = index
        index += 1
        guard let byte = peek else { throw failure("unterminated string") }
        index += 1
        switch byte {
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let digits = byte == UInt8(ascii: "u") ? 4 : 8
            guard index + digits <= bytes.count,
                let value = UInt32(String(decoding: bytes[index..<index + digits], as: UTF8.self), radix: 16),
                bytes[index..<index + digits].allSatisfy({ Self.hexValue($0) != nil }),
                let scalar = Unicode.Scalar(value)
            else {
                throw failure("invalid \\\(Character(Unicode.Scalar(byte))) escape: not a Unicode scalar", at: start)
            }
            index += digits
            return scalar
        default:
            throw failure("unknown escape \\\(Self.describe(byte))", at: start)
        }
    }

    /// `"""…"""` (with escapes) and `'''…'''` (without): up to two more quotes after the closing three belong to the
    /// content (`"""a""""` is `a"`), newlines are kept as written, and in the basic form a backslash at the end of a
    /// line trims the newline and the whitespace after it.
    private mutating func parseMultilineString(quote: UInt8, escapes: Bool) throws(Failure) -> String {
        let kind = escapes ? "multi-line string" : "multi-line literal string"
        index += 3
        skipNewlineAfterOpening()
        var scalars = String.UnicodeScalarView()
        while true {
            guard let byte = peek else { throw failure("unterminated \(kind)") }
            if byte == quote, peek(1) == quote, peek(2) == quote {
                var extra = 0
                while extra < 2, peek(3 + extra) == quote { extra += 1 }
                for _ in 0..<extra { scalars.append(Unicode.Scalar(quote)) }
                index += 3 + extra
                return String(scalars)
            }
            if byte == 0x0A {
                scalars.append("\n")
                newline()
            } else if byte == 0x0D, peek(1) == 0x0A {
                scalars.append("\r")
                scalars.append("\n")
                index += 1
                newline()
            } else if escapes, byte == UInt8(ascii: "\\") {
                if !skipLineEndingBackslash() { scalars.append(try parseEscape()) }
            } else {
                let scalar = try utf8Scalar()
                guard Self.isAllowedInString(scalar) else {
                    index -= 1
                    throw failure(
                        "control character \(Self.describe(byte)) in a \(escapes ? "string; escape it" : "literal string")"
                    )
                }
                scalars.append(scalar)
            }
        }
    }

    /// At a backslash followed by nothing but whitespace up to the end of the line: skips it, the newline and every
    /// blank after it, and returns true.
    private mutating func skipLineEndingBackslash() -> Bool {
        var probe = index + 1
        while probe < bytes.count, bytes[probe] == 0x20 || bytes[probe] == 0x09 { probe += 1 }
        let atLineEnd =
            probe < bytes.count
            && (bytes[probe] == 0x0A || (bytes[probe] == 0x0D && probe + 1 < bytes.count && bytes[probe + 1] == 0x0A))
        guard atLineEnd else { return false }
        index = probe
        while let next = peek {
            if next == 0x20 || next == 0x09 {
                index += 1
            } else if next == 0x0A {
                newline()
            } else if next == 0x0D, peek(1) == 0x0A {
                index += 1
                newline()
            } else {
                break
            }
        }
        return true
    }

    private mutating func parseLiteralString() throws(Failure) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        while true {
            guard let byte = peek else { throw failure("unterminated literal string") }
            if byte == UInt8(ascii: "'") {
                index += 1
                return String(scalars)
            }
            if byte == 0x0A || byte == 0x0D { throw failure("unterminated literal string") }
            let scalar = try utf8Scalar()
            guard Self.isAllowedInString(scalar) else {
                index -= 1
                throw failure("control character \(Self.describe(byte)) in a literal string")
            }
            scalars.append(scalar)
        }
    }

    private mutating func skipNewlineAfterOpening() {
        if peek == 0x0A {
            newline()
        } else if peek == 0x0D, peek(1) == 0x0A {
            index += 1
            newline()
        }
    }

    // MARK: - Numbers, dates and times

    /// The bytes of a number or date: up to a separator (whitespace, comma, bracket, brace, comment, newline). A
    /// date and a time may be separated by one space.
    private mutating func scanToken() -> [UInt8] {
        let start = index
        while let byte = peek, !Self.endsToken(byte) { index += 1 }
        // `1979-05-27 07:32:00`: a full date followed by a space and a time is one value.
        if index - start == 10, bytes[start + 4] == UInt8(ascii: "-"), peek == 0x20,
            let a = peek(1), let b = peek(2), let colon = peek(3),
            Self.isDigit(a) && Self.isDigit(b) && colon == UInt8(ascii: ":")
        {
            index += 1
            while let byte = peek, !Self.endsToken(byte) { index += 1 }
        }
        return Array(bytes[start..<index])
    }

    private static func endsToken(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: "#"):
            true
        default:
            false
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private mutating func parseNumberOrDate() throws(Failure) -> ConfigValue {
        let start = index
        let token = scanToken()
        let text = String(decoding: token, as: UTF8.self)
        guard !token.isEmpty else { throw failure("expected a value, found \(Self.describe(peek))") }
        if let value = Self.integer(token) { return .integer(value) }
        if let value = Self.float(token) { return .float(value) }
        if Self.isDateOrTime(token) { return .dateTime(text) }
        throw failure("\"\(text)\" is not a TOML value (strings need quotes)", at: start)
    }

    /// Digits (of `radix`) with single underscores between them.
    private static func digits(_ bytes: ArraySlice<UInt8>, radix: UInt8) -> Int64? {
        guard let first = bytes.first, let last = bytes.last, first != UInt8(ascii: "_"), last != UInt8(ascii: "_")
        else { return nil }
        var value: Int64 = 0
        var previousUnderscore = false
        for byte in bytes {
            if byte == UInt8(ascii: "_") {
                guard !previousUnderscore else { return nil }
                previousUnderscore = true
                continue
            }
            previousUnderscore = false
            guard let digit = hexValue(byte), digit < radix else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: Int64(radix))
            let (sum, overflow2) = times.addingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    private static func integer(_ token: [UInt8]) -> Int64? {
        var body = token[...]
        if token.count > 2, token[0] == UInt8(ascii: "0") {
            switch token[1] {
            case UInt8(ascii: "x"): return digits(token[2...], radix: 16)
            case UInt8(ascii: "o"): return digits(token[2...], radix: 8)
            case UInt8(ascii: "b"): return digits(token[2...], radix: 2)
            default: break
            }
        }
        var negative = false
        if let sign = body.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            body = body.dropFirst()
        }
        // No leading zeros (but 0 itself).
        guard let first = body.first, first != UInt8(ascii: "0") || body.count == 1 else { return nil }
        guard body.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "_") }) else { return nil }
        if negative {
            // Read as negative so Int64.min fits.
            guard let magnitude = digits(body, radix: 10) else {
                return body.filter { $0 != UInt8(ascii: "_") } == Array("9223372036854775808".utf8) ? .min : nil
            }
            return -magnitude
        }
        return digits(body, radix: 10)
    }

    private static func float(_ token: [UInt8]) -> Double? {
        var body = token[...]
        var sign = 1.0
        if let first = body.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first == UInt8(ascii: "-") ? -1 : 1
            body = body.dropFirst()
        }
        if body.elementsEqual("inf".utf8) { return sign * .infinity }
        if body.elementsEqual("nan".utf8) { return .nan }
        // integer part, then a fraction and/or an exponent.
        let exponentIndex = body.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        let mantissa = body[..<(exponentIndex ?? body.endIndex)]
        let dot = mantissa.firstIndex(of: UInt8(ascii: "."))
        let integerPart = mantissa[..<(dot ?? mantissa.endIndex)]
        guard dot != nil || exponentIndex != nil else { return nil }
        // The integer part has no leading zero (but may be 0 itself).
        guard validDecimal(integerPart), integerPart.first != UInt8(ascii: "0") || integerPart.count == 1 else {
            return nil
        }
        if let dot {
            guard validDecimal(mantissa[(dot + 1)...]) else { return nil }
        }
        if let exponentIndex {
            var exponent = body[(exponentIndex + 1)...]
            if let first = exponent.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
                exponent = exponent.dropFirst()
            }
            guard validDecimal(exponent) else { return nil }
        }
        let cleaned = String(decoding: body.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        guard let value = Double(cleaned) else { return nil }
        return sign * value
    }

    /// Decimal digits with single underscores between digits.
    private static func validDecimal(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.last, isDigit(first), isDigit(last) else { return false }
        var previousUnderscore = false
        for byte in bytes {
            if byte == UInt8(ascii: "_") {
                if previousUnderscore { return false }
                previousUnderscore = true
            } else if isDigit(byte) {
                previousUnderscore = false
            } else {
                return false
            }
        }
        return true
    }

    /// RFC 3339 dates and times as TOML allows them: `1979-05-27`, `07:32:00[.999]`, and date `T`/space time with
    /// an optional `Z` or `±hh:mm` offset.
    private static func isDateOrTime(_ token: [UInt8]) -> Bool {
        let text = token[...]
        func number(_ slice: ArraySlice<UInt8>, _ range: ClosedRange<Int>) -> Bool {
            guard slice.allSatisfy(isDigit), let value = Int(String(decoding: slice, as: UTF8.self)) else {
                return false
            }
            return range.contains(value)
        }
        func date(_ slice: ArraySlice<UInt8>) -> Bool {
            let s = Array(slice)
            guard s.count == 10, s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"),
                number(s[0..<4], 0...9999), number(s[5..<7], 1...12), number(s[8..<10], 1...31)
            else { return false }
            let year = Int(String(decoding: s[0..<4], as: UTF8.self))!
            let month = Int(String(decoding: s[5..<7], as: UTF8.self))!
            let day = Int(String(decoding: s[8..<10], as: UTF8.self))!
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            return day <= days
        }
        func time(_ slice: ArraySlice<UInt8>) -> Bool {
            let s = Array(slice)
            guard s.count >= 8, s[2] == UInt8(ascii: ":"), s[5] == UInt8(ascii: ":"),
                number(s[0..<2], 0...23), number(s[3..<5], 0...59), number(s[6..<8], 0...60)
            else { return false }
            if s.count == 8 { return true }
            return s[8] == UInt8(ascii: ".") && s.count > 9 && s[9...].allSatisfy(isDigit)
        }
        func offset(_ slice: ArraySlice<UInt8>) -> Bool {
            let s = Array(slice)
            if s == [UInt8(ascii: "Z")] || s == [UInt8(ascii: "z")] { return true }
            guard s.count == 6, s[0] == UInt8(ascii: "+") || s[0] == UInt8(ascii: "-"), s[3] == UInt8(ascii: ":")
            else { return false }
            return number(s[1..<3], 0...23) && number(s[4..<6], 0...59)
        }
        if date(text) { return true }
        if time(text) { return true }
        guard text.count > 11, date(text.prefix(10)) else { return false }
        let separator = text[text.startIndex + 10]
        guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == 0x20 else {
            return false
        }
        let rest = text.dropFirst(11)
        if time(rest) { return true }
        // The offset begins at the first 'Z' or sign after the seconds.
        guard rest.count > 8,
            let cut = rest.dropFirst(8).firstIndex(where: {
                $0 == UInt8(ascii: "Z") || $0 == UInt8(ascii: "z") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-")
            })
        else { return false }
        return time(rest[..<cut]) && offset(rest[cut...])
    }

    // MARK: - Paths

    private static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : path + "." + key
    }

    private mutating func record(_ path: String, line: Int) {
        if keyLines[path] == nil { keyLines[path] = line }
    }
}
