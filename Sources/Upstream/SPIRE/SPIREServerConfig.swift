public import SPIFFE
public import SPIFFECrypto

/// How to reach and join a SPIRE Server (`[upstream.spire]`).
public struct SPIREServerConfig: Sendable, Equatable {
    /// How this node proves itself to the server the first time (and again when its SVID is lost or expired).
    public enum NodeAttestor: Sendable, Equatable {
        /// A single-use token created on the server (`spire-server token generate`).
        case joinToken(String)
        /// The same, read from a private file (`join_token_file`) when the agent needs to attest.
        case joinTokenFile(String)
        /// Proof of possession of a node certificate and key the server's x509pop plugin trusts.
        case x509pop(certificatePath: String, privateKeyPath: String)
        /// A projected service-account token of the agent's pod, validated by the server against the cluster.
        case k8sPSAT(cluster: String, tokenPath: String)

        /// The server plugin's name, sent as the attestation data type.
        public var pluginName: String {
            switch self {
            case .joinToken, .joinTokenFile: "join_token"
            case .x509pop: "x509pop"
            case .k8sPSAT: "k8s_psat"
            }
        }
    }

    public var host: String
    public var port: Int
    public var trustDomain: TrustDomain
    /// Where the server's CA comes from until the first bundle arrives.
    public var trustBundle: TrustBundleSource
    public var nodeAttestor: NodeAttestor
    /// Where the agent's SVID, key and bundle are kept between restarts.
    public var dataDirectory: String
    /// How often entries and bundles are synced.
    public var syncInterval: Duration
    /// Bound on each call to the server.
    public var requestTimeout: Duration
    public var agentKeyType: KeyType

    public init(
        host: String,
        port: Int,
        trustDomain: TrustDomain,
        trustBundle: TrustBundleSource,
        nodeAttestor: NodeAttestor,
        dataDirectory: String,
        syncInterval: Duration = .seconds(5),
        requestTimeout: Duration = .seconds(10),
        agentKeyType: KeyType = .ecP256
    ) {
        self.host = host
        self.port = port
        self.trustDomain = trustDomain
        self.trustBundle = trustBundle
        self.nodeAttestor = nodeAttestor
        self.dataDirectory = dataDirectory
        self.syncInterval = syncInterval
        self.requestTimeout = requestTimeout
        self.agentKeyType = agentKeyType
    }

    /// The only identity the server may present: `spiffe://<trust domain>/spire/server`.
    public var serverID: SPIFFEID {
        // A trust domain with this fixed path is always a valid SPIFFE ID.
        try! SPIFFEID(trustDomain: trustDomain, path: "/spire/server")
    }
}
