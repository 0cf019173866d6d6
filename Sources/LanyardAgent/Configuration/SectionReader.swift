import Foundation

/// Collects every problem of one configuration file, so they are reported together, each with its key's line.
final class ConfigProblems {
    private(set) var problems: [ConfigError.Problem] = []
    let document: ConfigDocument
    /// The configuration file's directory, which relative paths are resolved against.
    let baseDirectory: String

    init(document: ConfigDocument, baseDirectory: String) {
        self.document = document
        self.baseDirectory = baseDirectory
    }

    func add(_ key: String, _ message: String) {
        problems.append(.init(key: key, message: message, line: document.line(of: key)))
    }
}

/// Reads one table of the configuration. It carries the table's key prefix (`workload_api.`), so each key is named
/// once, at the accessor that reads it; a value of the wrong type or outside its range is reported under the full
/// key, and ``finish()`` reports every key nobody read as unknown (a typo never falls back to a default silently).
final class SectionReader {
    let prefix: String
    let table: ConfigTable?
    let problems: ConfigProblems
    private var read: Set<String> = []

    /// `path` is the table's key path ("" for the root, "workload_api", "entries[2]").
    init(_ table: ConfigTable?, path: String, problems: ConfigProblems) {
        self.table = table
        self.prefix = path.isEmpty ? "" : path + "."
        self.problems = problems
    }

    /// Whether the table was written at all.
    var isPresent: Bool { table != nil }

    func has(_ key: String) -> Bool {
        read.insert(key)
        return table?[key] != nil
    }

    func problem(_ key: String, _ message: String) { problems.add(prefix + key, message) }

    /// The reader of a sub-table (`upstream.local`), or of an absent one.
    func section(_ key: String) -> SectionReader {
        read.insert(key)
        switch table?[key] {
        case .table(let child)?: return SectionReader(child, path: prefix + key, problems: problems)
        case let other?:
            problem(key, "must be a table, not \(other.typeName)")
            return SectionReader(nil, path: prefix + key, problems: problems)
        case nil: return SectionReader(nil, path: prefix + key, problems: problems)
        }
    }

    /// The readers of an array of tables (`[[entries]]`).
    func sections(_ key: String) -> [SectionReader] {
        read.insert(key)
        switch table?[key] {
        case nil: return []
        case .array(let values)? where values.allSatisfy(\.isTable):
            return values.enumerated().map { index, value in
                guard case .table(let child) = value else { preconditionFailure("checked above") }
                return SectionReader(child, path: "\(prefix)\(key)[\(index)]", problems: problems)
            }
        case let other?:
            problem(key, "must be an array of tables ([[\(prefix)\(key)]]), not \(other.typeName)")
            return []
        }
    }

    func string(_ key: String) -> String? {
        read.insert(key)
        switch table?[key] {
        case nil: return nil
        case .string(let value)?: return value
        case let other?:
            problem(key, "must be a string, not \(other.typeName)")
            return nil
        }
    }

    func string(_ key: String, default value: String) -> String { string(key) ?? value }

    func bool(_ key: String, default value: Bool) -> Bool {
        read.insert(key)
        switch table?[key] {
        case nil: return value
        case .bool(let found)?: return found
        case let other?:
            problem(key, "must be true or false, not \(other.typeName)")
            return value
        }
    }

    func integer(_ key: String) -> Int64? {
        read.insert(key)
        switch table?[key] {
        case nil: return nil
        case .integer(let value)?: return value
        case let other?:
            problem(key, "must be an integer, not \(other.typeName)")
            return nil
        }
    }

    /// An integer in `range`, else `value` (with a problem when one was written outside it).
    func integer(_ key: String, in range: ClosedRange<Int64>, default value: Int, describe: String? = nil) -> Int {
        guard let found = integer(key) else { return value }
        guard range.contains(found) else {
            problem(key, describe ?? "must be between \(range.lowerBound) and \(range.upperBound), not \(found)")
            return value
        }
        return Int(found)
    }

    func integers(_ key: String) -> [Int64]? {
        read.insert(key)
        switch table?[key] {
        case nil: return nil
        case .array(let values)?:
            var integers: [Int64] = []
            for value in values {
                guard case .integer(let integer) = value else {
                    problem(key, "must be an array of integers")
                    return nil
                }
                integers.append(integer)
            }
            return integers
        case let other?:
            problem(key, "must be an array of integers, not \(other.typeName)")
            return nil
        }
    }

    func strings(_ key: String) -> [String]? {
        read.insert(key)
        switch table?[key] {
        case nil: return nil
        case .array(let values)?:
            var strings: [String] = []
            for value in values {
                guard case .string(let string) = value else {
                    problem(key, "must be an array of strings")
                    return nil
                }
                strings.append(string)
            }
            return strings
        case let other?:
            problem(key, "must be an array of strings, not \(other.typeName)")
            return nil
        }
    }

    /// A positive duration such as `"90s"`; `allowZero` also takes `"0s"`.
    func duration(_ key: String, allowZero: Bool = false) -> Duration? {
        guard let text = string(key) else { return nil }
        guard let duration = DurationParser.parse(text), duration > .zero || (allowZero && duration == .zero) else {
            problem(
                key,
                "\"\(text)\" is not a \(allowZero ? "" : "positive ")duration such as \"90s\", \"5m\" or \"1h\""
            )
            return nil
        }
        return duration
    }

    func duration(_ key: String, default value: Duration) -> Duration { duration(key) ?? value }

    /// One of `type`'s raw values, listed in the message when another is written.
    func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, default value: Choice) -> Choice
    where Choice.RawValue == String {
        guard let text = string(key) else { return value }
        guard let choice = Choice(rawValue: text) else {
            problem(key, "must be one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))")
            return value
        }
        return choice
    }

    /// An absolute path (or nil when absent).
    func absolutePath(_ key: String, default value: String? = nil, what: String = "an absolute path") -> String? {
        guard let path = string(key) ?? value else { return nil }
        if !path.hasPrefix("/") { problem(key, "must be \(what)") }
        return path
    }

    /// Reports every key of the table that no accessor read.
    func finish() {
        guard let table else { return }
        for key in table.keys where !read.contains(key) {
            problem(key, "unknown key")
        }
    }
}
