public import Endpoints
public import SPIFFE

/// `[broker]`: the SPIFFE Broker Endpoint, off unless `socket_path` or `tcp_address` is set.
public struct BrokerSettings: Sendable, Equatable {
    /// The Unix socket (`socket_path`) or the TCP address (`tcp_address`, an IP literal and a port).
    public var address: BrokerServer.Address
    /// The endpoint's own SPIFFE ID in standalone mode, which brokers check
    /// (`spiffe://<td>/lanyard/broker-endpoint` by default); in fleet mode the endpoint presents the agent SVID.
    public var spiffeID: SPIFFEID
    /// Whether `spiffe_id` was written (fleet mode refuses it: the agent SVID is what the endpoint presents).
    var spiffeIDWritten = false
    /// The brokers allowed to call, by the SPIFFE ID of the X509-SVID they present.
    public var authorizedBrokers: Set<SPIFFEID>
    /// `max_connections` and `connection_idle_timeout`; streams per connection and request size are fixed.
    public var limits: BrokerServer.Limits = .defaults

    /// `[broker]`, or nil when it has neither `socket_path` nor `tcp_address` (its keys are checked either way).
    static func read(_ section: SectionReader, trustDomain: TrustDomain?) -> BrokerSettings? {
        var address: BrokerServer.Address? = section.absolutePath("socket_path").map { .unix(path: $0) }
        if let text = section.string("tcp_address") {
            if address != nil {
                section.problem("tcp_address", "set socket_path or tcp_address, not both")
            } else if let tcp = Self.tcpAddress(text) {
                address = tcp
            } else {
                section.problem(
                    "tcp_address",
                    "must be an IP address and a port, as 127.0.0.1:8443 or [::1]:8443, not \"\(text.prefix(80))\""
                )
            }
        }
        var spiffeID: SPIFFEID? = nil
        let spiffeIDWritten = section.has("spiffe_id")
        if let trustDomain {
            let text = section.string("spiffe_id", default: "spiffe://\(trustDomain.name)/lanyard/broker-endpoint")
            do {
                let id = try SPIFFEID(text)
                if id.trustDomain != trustDomain {
                    section.problem("spiffe_id", "\(id) is not in trust domain \(trustDomain)")
                } else {
                    spiffeID = id
                }
            } catch {
                section.problem("spiffe_id", "\(error)")
            }
        }
        var brokers: Set<SPIFFEID> = []
        for text in section.strings("authorized_brokers") ?? [] {
            do {
                let id = try SPIFFEID(text)
                if let trustDomain, id.trustDomain != trustDomain {
                    section.problem(
                        "authorized_brokers",
                        "\(id) is not in trust domain \(trustDomain); brokers present SVIDs of the agent's trust domain"
                    )
                }
                brokers.insert(id)
            } catch {
                section.problem("authorized_brokers", "\(error)")
            }
        }
        var limits = BrokerServer.Limits.defaults
        limits.maxConnections = section.integer(
            "max_connections",
            in: 1...65_536,
            default: limits.maxConnections
        )
        limits.idleTimeout = section.duration("connection_idle_timeout", default: limits.idleTimeout)
        guard let address, let spiffeID else { return nil }
        if brokers.isEmpty {
            section.problem("authorized_brokers", "the broker endpoint needs at least one authorized broker")
        }
        return BrokerSettings(
            address: address,
            spiffeID: spiffeID,
            spiffeIDWritten: spiffeIDWritten,
            authorizedBrokers: brokers,
            limits: limits
        )
    }

    /// `host:port` or `[v6]:port` with an IP literal host and a port in 1...65535.
    static func tcpAddress(_ text: String) -> BrokerServer.Address? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard IPAddressLiteral(String(host)) != nil, let port = Int(portText), (1...65535).contains(port) else {
            return nil
        }
        return .tcp(host: String(host), port: port)
    }
}
