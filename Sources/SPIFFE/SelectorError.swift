/// Why a string is not a `type:value` selector.
public enum SelectorError: Error, Hashable, Sendable, CustomStringConvertible {
    case missingSeparator(String)
    case emptyType
    case colonInType(String)
    case emptyValue(type: String)

    public var description: String {
        switch self {
        case .missingSeparator(let string): "selector \"\(string)\" must have the form type:value"
        case .emptyType: "selector type cannot be empty"
        case .colonInType(let type): "selector type \"\(type)\" cannot contain a colon"
        case .emptyValue(let type): "selector value cannot be empty (type \"\(type)\")"
        }
    }
}
