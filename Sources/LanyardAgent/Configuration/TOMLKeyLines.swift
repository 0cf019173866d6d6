/// The line on which each key of a TOML document is defined, for messages about values that parse but are wrong
/// (TOMLKit gives positions for syntax errors only).
///
/// A line scanner that knows what can begin a key: `[table]` and `[[array]]` headers (each `[[entries]]` counts up
/// `entries[0]`, `entries[1]`, …) and `key = …` or `dotted.key = …` lines, outside multi-line strings and outside
/// brackets still open on earlier lines. A key inside an inline table has the line of the key that holds the
/// table; ``line(of:)`` falls back to the nearest enclosing key it knows.
struct TOMLKeyLines: Sendable {
    private var lines: [String: Int] = [:]

    init(_ text: String) {
        var prefix = ""
        var arrayCounts: [String: Int] = [:]
        var depth = 0
        var multiline: [UInt8]? = nil
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let bytes = Array(line.utf8)
            var position = 0
            if let delimiter = multiline {
                guard let end = Self.find(delimiter, in: bytes, from: 0) else { continue }
                multiline = nil
                position = end + 3
                depth += Self.bracketDepth(bytes, from: position, multiline: &multiline)
                continue
            }
            while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") {
                position += 1
            }
            guard position < bytes.count else { continue }
            if depth == 0, bytes[position] == UInt8(ascii: "[") {
                let isArray = position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "[")
                let start = position + (isArray ? 2 : 1)
                guard let close = bytes[start...].firstIndex(of: UInt8(ascii: "]")),
                    let keys = Self.keyPath(bytes[start..<close])
                else { continue }
                var path = keys.joined(separator: ".")
                if isArray {
                    let count = arrayCounts[path, default: 0]
                    arrayCounts[path] = count + 1
                    path += "[\(count)]"
                }
                prefix = path
                record(path, line: index + 1)
                continue
            }
            if depth == 0, let equals = Self.assignment(bytes, from: position),
                let keys = Self.keyPath(bytes[position..<equals])
            {
                record((prefix.isEmpty ? "" : prefix + ".") + keys.joined(separator: "."), line: index + 1)
                position = equals + 1
            }
            depth += Self.bracketDepth(bytes, from: position, multiline: &multiline)
            depth = max(0, depth)
        }
    }

    /// Records where `path` is defined, and where each table above it is first mentioned (`a.b = 1` defines `a`).
    private mutating func record(_ path: String, line: Int) {
        var end = path.endIndex
        while true {
            let key = String(path[..<end])
            if lines[key] == nil { lines[key] = line }
            guard let cut = path[..<end].lastIndex(of: ".") else { return }
            end = cut
        }
    }

    /// The line of `key` ("workload_api.socket_path", "entries[1].selectors"), or of its nearest enclosing key.
    func line(of key: String) -> Int? {
        var path = Substring(key)
        while !path.isEmpty {
            if let line = lines[String(path)] { return line }
            guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            path = path[..<cut]
        }
        return nil
    }

    /// The index of the `=` of a `key = value` line, if the line has one before any value.
    private static func assignment(_ bytes: [UInt8], from start: Int) -> Int? {
        var quote: UInt8? = nil
        for index in start..<bytes.count {
            let byte = bytes[index]
            if let open = quote {
                if byte == open { quote = nil }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "'"): quote = byte
            case UInt8(ascii: "="): return index
            case UInt8(ascii: "#"), UInt8(ascii: "["), UInt8(ascii: "{"): return nil
            default: continue
            }
        }
        return nil
    }

    /// The parts of a key (`a.b`, `"quoted.part".c`), unquoted; nil when it is not a key.
    private static func keyPath(_ bytes: ArraySlice<UInt8>) -> [String]? {
        var parts: [String] = []
        var current: [UInt8] = []
        var quote: UInt8? = nil
        for byte in bytes {
            if let open = quote {
                if byte == open { quote = nil } else { current.append(byte) }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "'"): quote = byte
            case UInt8(ascii: "."):
                parts.append(String(decoding: current, as: UTF8.self))
                current = []
            case UInt8(ascii: " "), UInt8(ascii: "\t"): continue
            default: current.append(byte)
            }
        }
        parts.append(String(decoding: current, as: UTF8.self))
        return parts.contains(where: \.isEmpty) ? nil : parts
    }

    /// How many brackets a value opens (or closes) from `start`, skipping strings and comments; notes a multi-line
    /// string left open at the end of the line.
    private static func bracketDepth(_ bytes: [UInt8], from start: Int, multiline: inout [UInt8]?) -> Int {
        var depth = 0
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "#"):
                return depth
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let triple = [byte, byte, byte]
                if index + 2 < bytes.count, Array(bytes[index...index + 2]) == triple {
                    guard let end = find(triple, in: bytes, from: index + 3) else {
                        multiline = triple
                        return depth
                    }
                    index = end + 3
                    continue
                }
                index += 1
                while index < bytes.count, bytes[index] != byte {
                    if byte == UInt8(ascii: "\"") && bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    index += 1
                }
                index += 1
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
            index += 1
        }
        return depth
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count) where Array(bytes[index..<index + needle.count]) == needle {
            return index
        }
        return nil
    }
}
