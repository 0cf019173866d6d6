/// `[health]`: where `/live`, `/ready` and `/metrics` listen.
public struct HealthSettings: Sendable, Equatable {
    /// nil when turned off (`listen = ""`).
    public var listen: HostAndPort?

    static func read(_ section: SectionReader) -> HealthSettings {
        let text = section.string("listen", default: "127.0.0.1:8088")
        guard !text.isEmpty else { return HealthSettings(listen: nil) }
        guard let address = HostAndPort(text) else {
            section.problem("listen", "\"\(text)\" is not host:port (such as \"127.0.0.1:8088\"); \"\" turns it off")
            return HealthSettings(listen: nil)
        }
        return HealthSettings(listen: address)
    }
}

/// `host:port`, an IPv6 host in brackets, the port 0–65535.
public struct HostAndPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`; nil when the text is not of that form.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
