/// Parses JSON text into ``JSONValue`` in one pass over the bytes.
///
/// JWT headers and claims are parsed three times per validation; `JSONDecoder` has no way to ask a value's type,
/// so decoding ``JSONValue`` through it tried each type in turn and built an error for every miss. Duplicate keys
/// are refused (a token whose `aud` appears twice is ambiguous), and nesting is bounded.
package struct JSONParser {
    private let bytes: [UInt8]
    private var position = 0
    private let maximumDepth: Int

    package enum Failure: Error, Equatable {
        case malformed(at: Int)
        case tooDeep
        case duplicateKey(String)
    }

    /// The one value `bytes` holds, with nothing but whitespace around it.
    package static func parse(_ bytes: some Sequence<UInt8>, maximumDepth: Int = 64) throws(Failure) -> JSONValue {
        try parse(Array(bytes), maximumDepth: maximumDepth)
    }

    /// The same for bytes already in an array: no generic copy (unspecialized across modules, it showed in JWT
    /// validation profiles).
    package static func parse(_ bytes: [UInt8], maximumDepth: Int = 64) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maximumDepth: maximumDepth)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { throw .malformed(at: parser.position) }
        return value
    }

    private init(bytes: [UInt8], maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func next() throws(Failure) -> UInt8 {
        skipWhitespace()
        guard position < bytes.count else { throw .malformed(at: position) }
        return bytes[position]
    }

    private mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= maximumDepth else { throw .tooDeep }
        switch try next() {
        case UInt8(ascii: "{"):
            position += 1
            var object: [String: JSONValue] = [:]
            if try next() == UInt8(ascii: "}") {
                position += 1
                return .object(object)
            }
            while true {
                guard try next() == UInt8(ascii: "\"") else { throw .malformed(at: position) }
                let key = try string()
                guard try next() == UInt8(ascii: ":") else { throw .malformed(at: position) }
                position += 1
                guard object.updateValue(try value(depth: depth + 1), forKey: key) == nil else {
                    throw .duplicateKey(key)
                }
                switch try next() {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"):
                    position += 1
                    return .object(object)
                default: throw .malformed(at: position)
                }
            }
        case UInt8(ascii: "["):
            position += 1
            var array: [JSONValue] = []
            if try next() == UInt8(ascii: "]") {
                position += 1
                return .array(array)
            }
            while true {
                array.append(try value(depth: depth + 1))
                switch try next() {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"):
                    position += 1
                    return .array(array)
                default: throw .malformed(at: position)
                }
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return .number(try number())
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        let expected = Array(word.utf8)
        guard position + expected.count <= bytes.count, Array(bytes[position..<position + expected.count]) == expected
        else { throw .malformed(at: position) }
        position += expected.count
    }

    /// RFC 8259 number grammar, then `Double`.
    private mutating func number() throws(Failure) -> Double {
        let start = position
        func digits() -> Int {
            let first = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            return position - first
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integer = digits()
        guard integer > 0, integer == 1 || bytes[position - integer] != UInt8(ascii: "0") else {
            throw .malformed(at: start)
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw .malformed(at: position) }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits() > 0 else { throw .malformed(at: position) }
        }
        guard let value = Double(String(decoding: bytes[start..<position], as: UTF8.self)), value.isFinite else {
            throw .malformed(at: start)
        }
        return value
    }

    /// The string at the opening quote, escapes decoded; invalid UTF-8 and unpaired surrogates are refused.
    private mutating func string() throws(Failure) -> String {
        position += 1
        var output: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: output, as: UTF8.self) else { throw .malformed(at: position) }
                return text
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw .malformed(at: position) }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw .malformed(at: position) }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw .malformed(at: position) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw .malformed(at: position) }
                    output.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: throw .malformed(at: position)
                }
            case 0..<0x20: throw .malformed(at: position)
            default: output.append(byte)
            }
        }
        throw .malformed(at: position)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count else { throw .malformed(at: position) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = UInt32(String(UnicodeScalar(bytes[position])), radix: 16) else {
                throw .malformed(at: position)
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }
}
