/// One fact an attestor proved about a caller, spelled `type:value` as SPIRE does: `unix:uid:1000`,
/// `k8s:ns:payments`, `k8s:pod-label:app:web`. Only the first colon separates; the value may hold more.
public struct Selector: Hashable, Comparable, Sendable, CustomStringConvertible, Codable, StringCodable {
    public let type: String
    public let value: String

    public init(type: String, value: String) throws(SelectorError) {
        if type.isEmpty { throw .emptyType }
        if type.utf8.contains(UInt8(ascii: ":")) { throw .colonInType(type) }
        if value.isEmpty { throw .emptyValue(type: type) }
        self.type = type
        self.value = value
    }

    /// Parses `type:value`, splitting at the first colon byte (not `Character`: a colon followed by a combining
    /// mark is one grapheme cluster, and would hide the separator).
    public init(_ string: String) throws(SelectorError) {
        guard let colon = string.utf8.firstIndex(of: UInt8(ascii: ":")) else { throw .missingSeparator(string) }
        let type = Substring(string.utf8[..<colon])
        let value = Substring(string.utf8[string.utf8.index(after: colon)...])
        try self.init(type: String(type), value: String(value))
    }

    public var description: String { "\(type):\(value)" }

    public static func < (lhs: Selector, rhs: Selector) -> Bool {
        (lhs.type, lhs.value) < (rhs.type, rhs.value)
    }
}
