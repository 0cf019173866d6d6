public import SPIFFE

/// `[broker]`: the SPIFFE Broker Endpoint, off unless `socket_path` is set.
public struct BrokerSettings: Sendable, Equatable {
    public var socketPath: String
    /// The endpoint's own SPIFFE ID, which brokers check (`spiffe://<td>/lanyard/broker-endpoint` by default).
    public var spiffeID: SPIFFEID
    /// The brokers allowed to call, by the SPIFFE ID of the X509-SVID they present.
    public var authorizedBrokers: Set<SPIFFEID>

    /// `[broker]`, or nil when it has no `socket_path` (its keys are checked either way).
    static func read(_ section: SectionReader, trustDomain: TrustDomain?) -> BrokerSettings? {
        let socketPath = section.absolutePath("socket_path")
        var spiffeID: SPIFFEID? = nil
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
        guard let socketPath, let spiffeID else { return nil }
        if brokers.isEmpty {
            section.problem("authorized_brokers", "the broker endpoint needs at least one authorized broker")
        }
        return BrokerSettings(socketPath: socketPath, spiffeID: spiffeID, authorizedBrokers: brokers)
    }
}
