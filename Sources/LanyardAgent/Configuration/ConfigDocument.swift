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
}
