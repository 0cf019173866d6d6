import Foundation

/// A configuration file parsed as TOML 1.0 (``TOMLParser``), with the line of every key for messages about its
/// value.
struct ConfigDocument: Sendable {
    let root: ConfigTable
    let keyLines: [String: Int]

    init(parsing bytes: [UInt8]) throws(TOMLParser.Failure) {
        let document = try TOMLParser.parse(bytes)
        root = document.root
        keyLines = document.keyLines
    }

    /// The line of `key` ("workload_api.socket_path", "entries[1].selectors"), or of its nearest enclosing key.
    func line(of key: String) -> Int? {
        var path = Substring(key)
        while !path.isEmpty {
            if let line = keyLines[String(path)] { return line }
            guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            path = path[..<cut]
        }
        return nil
    }

    /// Parses `bytes` and reads the whole file with `read`, which reports into the root reader; every problem (the
    /// syntax error, or all that `read` found) is thrown together under `path`. Relative paths in the file resolve
    /// against its directory.
    static func read<Config>(
        bytes: [UInt8],
        path: String,
        _ read: (SectionReader) -> Config?
    ) throws(ConfigError) -> Config {
        let document: ConfigDocument
        do {
            document = try ConfigDocument(parsing: bytes)
        } catch {
            throw ConfigError(
                path: path,
                problems: [.init(key: "", message: error.message, line: error.line, column: error.column)]
            )
        }
        let problems = ConfigProblems(document: document, baseDirectory: (path as NSString).deletingLastPathComponent)
        let config = read(SectionReader(document.root, path: "", problems: problems))
        guard problems.problems.isEmpty, let config else { throw ConfigError(path: path, problems: problems.problems) }
        return config
    }
}
