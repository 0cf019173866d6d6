/// The byte level shared by Lanyard's JSON readers (``JSONParser`` for JWTs, the kubelet's pod-list reader):
/// whitespace, literals, strings with their escapes, RFC 8259 numbers, and skipping a value unread.
///
/// One policy for text: a string that is decoded must be valid UTF-8 once its escapes are applied, and an unpaired
/// surrogate escape, a raw control character or an unknown escape is refused. Strings skipped unread are checked
/// for their escapes and end, not decoded. Every failure names the byte it was found at.
///
/// The scanner reads bytes the caller keeps alive (inside `withUnsafeBytes`), so it never copies the document.
package struct JSONScanner {
    /// What is wrong and where. `reason` names a key at most, never a value, so it is fit for a log.
    package struct Failure: Error, Equatable, CustomStringConvertible {
        package let offset: Int
        package let reason: String

        package var description: String { "\(reason) (byte \(offset))" }
    }

    private let bytes: UnsafeRawBufferPointer
    /// The offset of the next byte to read.
    package private(set) var position = 0

    package init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// A failure at the current position; shape problems (a member of the wrong kind) are reported with it too.
    package func failure(_ reason: String) -> Failure {
        Failure(offset: position, reason: reason)
    }

    /// A grammar failure at the current position.
    package func malformed(_ what: String) -> Failure {
        failure("malformed JSON: \(what)")
    }

    /// Whether only whitespace is left.
    package mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return position == bytes.count
    }

    package mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// The next byte that is not whitespace, not consumed.
    package mutating func peek() throws(Failure) -> UInt8 {
        skipWhitespace()
        guard position < bytes.count else { throw malformed("unexpected end") }
        return bytes[position]
    }

    /// Consumes the byte `peek` returned.
    package mutating func advance() {
        position += 1
    }

    /// Consumes `byte`, the next one that is not whitespace.
    package mutating func expect(_ byte: UInt8) throws(Failure) {
        guard try peek() == byte else { throw malformed("expected '\(Character(Unicode.Scalar(byte)))'") }
        position += 1
    }

    /// Consumes the next token when it is `byte` and says whether it was.
    package mutating func consume(_ byte: UInt8) throws(Failure) -> Bool {
        guard try peek() == byte else { return false }
        position += 1
        return true
    }

    /// Consumes `null` when it is next and says whether it was.
    package mutating func null() throws(Failure) -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// Consumes `true`, `false` or `null`, exactly.
    package mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw malformed("unexpected end") }
        for offset in 0..<count where bytes[position + offset] != word.utf8Start[offset] {
            throw malformed("unknown literal")
        }
        position += count
    }

    // MARK: - Containers

    /// Reads the object at the next token, calling `member` with each key and the scanner at its value, which
    /// `member` must consume.
    package mutating func object(_ member: (inout JSONScanner, String) throws(Failure) -> Void) throws(Failure) {
        try expect(UInt8(ascii: "{"))
        if try consume(UInt8(ascii: "}")) { return }
        repeat {
            guard try peek() == UInt8(ascii: "\"") else { throw malformed("expected a key") }
            let key = try string()
            try expect(UInt8(ascii: ":"))
            try member(&self, key)
        } while try consume(UInt8(ascii: ","))
        guard try consume(UInt8(ascii: "}")) else { throw malformed("expected ',' or '}'") }
    }

    /// Reads the array at the next token, calling `element` with each index and the scanner at the element, which
    /// `element` must consume.
    package mutating func array(_ element: (inout JSONScanner, Int) throws(Failure) -> Void) throws(Failure) {
        try expect(UInt8(ascii: "["))
        if try consume(UInt8(ascii: "]")) { return }
        var index = 0
        repeat {
            try element(&self, index)
            index += 1
        } while try consume(UInt8(ascii: ","))
        guard try consume(UInt8(ascii: "]")) else { throw malformed("expected ',' or ']'") }
    }

    // MARK: - Strings

    /// The string at the next token, escapes decoded.
    package mutating func string() throws(Failure) -> String {
        guard try peek() == UInt8(ascii: "\"") else { throw malformed("expected a string") }
        position += 1
        let start = position
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
                guard let value = String(validating: raw, as: UTF8.self) else { throw malformed("invalid UTF-8") }
                position += 1
                return value
            case UInt8(ascii: "\\"):
                return try escapedString(from: start)
            case 0..<0x20: throw malformed("control character in a string")
            default: position += 1
            }
        }
        throw malformed("unterminated string")
    }

    /// The rest of a string that has escapes, from its first byte at `start`; `position` is at the first escape.
    private mutating func escapedString(from start: Int) throws(Failure) -> String {
        var output = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                guard let value = String(validating: output, as: UTF8.self) else { throw malformed("invalid UTF-8") }
                position += 1
                return value
            case UInt8(ascii: "\\"):
                try escape(into: &output)
            case 0..<0x20: throw malformed("control character in a string")
            default:
                output.append(byte)
                position += 1
            }
        }
        throw malformed("unterminated string")
    }

    /// Decodes the escape at `position` (a backslash) into `output`, UTF-8 encoded.
    private mutating func escape(into output: inout [UInt8]) throws(Failure) {
        guard position + 1 < bytes.count else { throw malformed("unterminated string") }
        let escape = bytes[position + 1]
        position += 2
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xDC00..<0xE000).contains(scalar) { throw malformed("unpaired surrogate") }
            if (0xD800..<0xDC00).contains(scalar) {
                guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                    bytes[position + 1] == UInt8(ascii: "u")
                else { throw malformed("unpaired surrogate") }
                position += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw malformed("unpaired surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw malformed("invalid \\u escape") }
            output.append(contentsOf: UTF8.encode(unicode)!)
        default: throw malformed("invalid escape")
        }
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count else { throw malformed("unexpected end") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw malformed("invalid \\u escape")
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }

    /// Passes over the string at `position` (its opening quote), checking escapes and the end but decoding nothing.
    private mutating func skipString() throws(Failure) {
        position += 1
        var scratch: [UInt8] = []
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                return
            case UInt8(ascii: "\\"):
                try escape(into: &scratch)
                scratch.removeAll(keepingCapacity: true)
            case 0..<0x20: throw malformed("control character in a string")
            default: position += 1
            }
        }
        throw malformed("unterminated string")
    }

    // MARK: - Numbers

    /// The number at the next token, by RFC 8259's grammar; values beyond `Double`'s range are refused.
    package mutating func number() throws(Failure) -> Double {
        skipWhitespace()
        let start = position
        try skipNumber()
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            position = start
            throw malformed("number out of range")
        }
        return value
    }

    /// Passes over a number, checking its grammar: `-`? int frac? exp?, with no leading zeros.
    private mutating func skipNumber() throws(Failure) {
        func digits() -> Int {
            let first = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            return position - first
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integer = digits()
        guard integer > 0 else { throw malformed("invalid number") }
        guard integer == 1 || bytes[position - integer] != UInt8(ascii: "0") else {
            throw malformed("leading zero in a number")
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw malformed("invalid number") }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits() > 0 else { throw malformed("invalid number") }
        }
    }

    // MARK: - Skipping

    /// Passes over one value of any kind without keeping it, checking its grammar. Nesting is tracked on a small
    /// stack of container kinds rather than by recursion, and refused deeper than `maximumDepth`.
    package mutating func skipValue(maximumDepth: Int) throws(Failure) {
        var containers: [Bool] = []  // true: object, false: array
        expectingValue: while true {
            switch try peek() {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = bytes[position] == UInt8(ascii: "{")
                position += 1
                if try consume(isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) { break }
                guard containers.count < maximumDepth else { throw failure("nested deeper than \(maximumDepth)") }
                containers.append(isObject)
                if isObject { try skipKey() }
                continue expectingValue
            case UInt8(ascii: "\""): try skipString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber()
            default: throw malformed("expected a value")
            }
            // A value ended: close containers, or move to the next member or element.
            while let isObject = containers.last {
                if try consume(UInt8(ascii: ",")) {
                    if isObject { try skipKey() }
                    continue expectingValue
                }
                guard try consume(isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw malformed(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
                containers.removeLast()
            }
            return
        }
    }

    private mutating func skipKey() throws(Failure) {
        guard try peek() == UInt8(ascii: "\"") else { throw malformed("expected a key") }
        try skipString()
        try expect(UInt8(ascii: ":"))
    }
}
