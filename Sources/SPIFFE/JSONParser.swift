/// Parses JSON text into ``JSONValue`` in one pass over the bytes, on ``JSONScanner``.
///
/// JWT headers and claims are parsed three times per validation; `JSONDecoder` has no way to ask a value's type,
/// so decoding ``JSONValue`` through it tried each type in turn and built an error for every miss. Duplicate keys
/// are refused (a token whose `aud` appears twice is ambiguous), and nesting is bounded.
package enum JSONParser {
    package typealias Failure = JSONScanner.Failure

    /// The one value `bytes` holds, with nothing but whitespace around it.
    package static func parse(_ bytes: some Sequence<UInt8>, maximumDepth: Int = 64) throws(Failure) -> JSONValue {
        try parse(Array(bytes), maximumDepth: maximumDepth)
    }

    /// The same for bytes already in an array: no generic copy (unspecialized across modules, it showed in JWT
    /// validation profiles).
    package static func parse(_ bytes: [UInt8], maximumDepth: Int = 64) throws(Failure) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(Failure) -> JSONValue in
                var scanner = JSONScanner(raw)
                let value = try value(&scanner, depth: 0, maximumDepth: maximumDepth)
                guard scanner.isAtEnd() else { throw scanner.malformed("data after the value") }
                return value
            }
        }
        return try result.get()
    }

    private static func value(_ scanner: inout JSONScanner, depth: Int, maximumDepth: Int) throws(Failure) -> JSONValue
    {
        guard depth <= maximumDepth else { throw scanner.failure("nested deeper than \(maximumDepth)") }
        switch try scanner.peek() {
        case UInt8(ascii: "{"):
            var object: [String: JSONValue] = [:]
            try scanner.object { (scanner, key) throws(Failure) in
                let member = try value(&scanner, depth: depth + 1, maximumDepth: maximumDepth)
                guard object.updateValue(member, forKey: key) == nil else {
                    throw scanner.failure("duplicate key \"\(key)\"")
                }
            }
            return .object(object)
        case UInt8(ascii: "["):
            var array: [JSONValue] = []
            try scanner.array { (scanner, _) throws(Failure) in
                array.append(try value(&scanner, depth: depth + 1, maximumDepth: maximumDepth))
            }
            return .array(array)
        case UInt8(ascii: "\""): return .string(try scanner.string())
        case UInt8(ascii: "t"):
            try scanner.literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try scanner.literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try scanner.literal("null")
            return .null
        default: return .number(try scanner.number())
        }
    }
}
