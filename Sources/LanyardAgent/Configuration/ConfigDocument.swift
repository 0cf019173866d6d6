import TOMLKit

/// A configuration file parsed as TOML 1.0 (TOMLKit, over toml++): every form a user may write — dotted keys,
/// inline tables, multi-line and literal strings, hex/octal/binary integers, escapes — with the line of every key
/// for messages about its value.
struct ConfigDocument: Sendable {
    let root: ConfigTable
    let keyLines: TOMLKeyLines

    /// A syntax error, with the position toml++ reports.
    struct SyntaxError: Error, CustomStringConvertible {
        let line: Int
        let column: Int
        let message: String

        var description: String { "line \(line), column \(column): \(message)" }
    }

    init(parsing text: String) throws(SyntaxError) {
        // TOMLKit hands strings over as C strings, so one holding U+0000 would come back cut short; no key takes one.
        if let line = Self.lineWithNUL(in: text) {
            throw SyntaxError(line: line, column: 1, message: "a string holds U+0000, which no setting accepts")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw SyntaxError(line: error.source.begin.line, column: error.source.begin.column, message: error.description)
        } catch {
            throw SyntaxError(line: 1, column: 1, message: "\(error)")
        }
        root = Self.convert(table)
        keyLines = TOMLKeyLines(text)
    }

    private static func convert(_ table: TOMLTable) -> ConfigTable {
        var converted = ConfigTable()
        for key in table.keys {
            if let value = table[key] { converted.values[key] = convert(value) }
        }
        return converted
    }

    private static func convert(_ value: any TOMLValueConvertible) -> ConfigValue {
        switch value.type {
        case .string: .string(value.string ?? "")
        case .int: .integer(Int64(value.int ?? 0))
        case .double: .float(value.double ?? 0)
        case .bool: .bool(value.bool ?? false)
        case .table: .table(value.table.map(convert) ?? ConfigTable())
        case .array: .array(value.array.map { $0.map(convert) } ?? [])
        case .date, .time, .dateTime: .dateTime(value.debugDescription)
        }
    }

    /// The line of a `\u0000` or `\U00000000` escape, or of a raw NUL byte.
    private static func lineWithNUL(in text: String) -> Int? {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.utf8.contains(0) || line.contains("\\u0000") || line.contains("\\U00000000") {
            return index + 1
        }
        return nil
    }
}
