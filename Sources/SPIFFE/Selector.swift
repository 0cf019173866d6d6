/// One fact an attestor proved about a caller, spelled `type:value` as SPIRE does: `unix:uid:1000`,
/// `k8s:ns:payments`, `k8s:pod-label:app:web`. Only the first colon separates; the value may hold more.
public struct Selector: Hashable, Comparable, Sendable, CustomStringConvertible, Codable, StringCodable {
    public let type: String
    public let value: String

    public init(type: String, value: String) throws(SelectorError) {
        if type.isEmpty { throw .emptyType }
        if type.contains(":") { throw .colonInType(type) }
        if value.isEmpty { throw .emptyValue(type: type) }
        self.type = type
        self.value = value
    }

    /// Parses `type:value`.
    public init(_ string: String) throws(SelectorError) {
        guard let colon = string.firstIndex(of: ":") else { throw .missingSeparator(string) }
        try self.init(type: String(string[..<colon]), value: String(string[string.index(after: colon)...]))
    }

    public var description: String { "\(type):\(value)" }

    public static func < (lhs: Selector, rhs: Selector) -> Bool {
        (lhs.type, lhs.value) < (rhs.type, rhs.value)
    }
}
