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

        /// Whether the agent can attest again by itself (a join token is single-use).
        public var canAttestAgain: Bool {
            switch self {
            case .joinToken, .joinTokenFile: false
            case .x509pop, .k8sPSAT: true
            }
        }

        /// The server plugin's name, sent as the attestation data type.
        public var pluginName: String {
            switch self {
            case .joinToken, .joinTokenFile: "join_token"
            case .x509pop: "x509pop"
            case .k8sPSAT: "k8s_psat"
            }
        }
    }

    /// What the agent does when the server's certificate no longer chains to the stored bundle (its CA was
    /// replaced) or the server refuses the agent's SVID (`rebootstrap_mode`).
    public enum RebootstrapMode: String, Sendable, Equatable, CaseIterable {
        /// Keep refusing and say what the operator must do.
        case never
        /// Bootstrap again after `rebootstrap_delay` if the node attestor can attest again.
        case auto
        /// The same; a configuration whose attestor cannot (a join token) is refused at start.
        case always
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
    public var rebootstrapMode: RebootstrapMode
    /// How long the refusal must last before the agent bootstraps again: a server briefly presenting something
    /// else (a misrouted connection, a restore in progress) must not make it discard its identity.
    public var rebootstrapDelay: Duration

    public init(
        host: String,
        port: Int,
        trustDomain: TrustDomain,
        trustBundle: TrustBundleSource,
        nodeAttestor: NodeAttestor,
        dataDirectory: String,
        syncInterval: Duration = .seconds(5),
        requestTimeout: Duration = .seconds(10),
        agentKeyType: KeyType = .ecP256,
        rebootstrapMode: RebootstrapMode = .never,
        rebootstrapDelay: Duration = .seconds(600)
    ) {
        self.rebootstrapMode = rebootstrapMode
        self.rebootstrapDelay = rebootstrapDelay
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
