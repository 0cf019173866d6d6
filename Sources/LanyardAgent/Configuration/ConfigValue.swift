/// One value of a configuration file, as TOML 1.0 defines values. Converted once from the parser's tree, so the
/// section readers work on plain Swift values.
enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    /// Dates and times (offset or local): valid TOML, but no key takes one.
    case dateTime(String)
    case array([ConfigValue])
    case table(ConfigTable)

    /// How messages name the kind of value a key has ("must be a string, not an integer").
    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a float"
        case .bool: "a boolean"
        case .dateTime: "a date or time"
        case .array(let values) where !values.isEmpty && values.allSatisfy(\.isTable): "an array of tables"
        case .array: "an array"
        case .table: "a table"
        }
    }

    var isTable: Bool {
        if case .table = self { return true }
        return false
    }
}

/// A TOML table: its keys and values. Whether it came from a `[header]`, a dotted key or an inline `{ … }` makes
/// no difference to the reader.
struct ConfigTable: Sendable, Equatable {
    var values: [String: ConfigValue] = [:]

    subscript(key: String) -> ConfigValue? { values[key] }

    var keys: [String] { values.keys.sorted() }
}
