/// A registration entry: the identity a workload gets when the attestors prove all of the entry's selectors.
///
/// Entries come from the upstream (the local config or a SPIRE Server); the agent only reads them.
public struct RegistrationEntry: Hashable, Sendable, Identifiable {
    /// Stable identifier: SPIRE's entry ID, or one derived from the config for the local upstream.
    public var id: String
    public var spiffeID: SPIFFEID
    public var selectors: Set<Selector>
    /// Lifetime of X.509-SVIDs minted for this entry; `nil` means the upstream's default.
    public var x509SVIDTTL: Duration?
    /// Lifetime of JWT-SVIDs minted for this entry; `nil` means the upstream's default.
    public var jwtSVIDTTL: Duration?
    /// Lifetime of WIT-SVIDs for this entry; `nil` means the JWT-SVID default, zero means no WIT-SVIDs.
    public var witSVIDTTL: Duration?
    public var dnsNames: [String]
    /// Tells workloads holding several identities which one this is; unique per response.
    public var hint: String
    /// Foreign trust domains whose bundles workloads of this entry receive.
    public var federatesWith: [TrustDomain]
    /// Changes whenever the upstream changes the entry, so caches know to re-mint.
    public var revision: Int64

    public init(
        id: String,
        spiffeID: SPIFFEID,
        selectors: Set<Selector>,
        x509SVIDTTL: Duration? = nil,
        jwtSVIDTTL: Duration? = nil,
        witSVIDTTL: Duration? = nil,
        dnsNames: [String] = [],
        hint: String = "",
        federatesWith: [TrustDomain] = [],
        revision: Int64 = 0
    ) {
        self.id = id
        self.spiffeID = spiffeID
        self.selectors = selectors
        self.x509SVIDTTL = x509SVIDTTL
        self.jwtSVIDTTL = jwtSVIDTTL
        self.witSVIDTTL = witSVIDTTL
        self.dnsNames = dnsNames
        self.hint = hint
        self.federatesWith = federatesWith
        self.revision = revision
    }

    /// Whether workloads of this entry get WIT-SVIDs (`wit_svid_ttl` is not zero).
    public var issuesWITSVIDs: Bool { witSVIDTTL != .zero }

    /// SPIRE's workload matching: the entry applies when every one of its selectors is among the caller's.
    /// An entry without selectors matches nobody, so a misconfiguration never grants an identity to everyone.
    public func matches(_ callerSelectors: Set<Selector>) -> Bool {
        !selectors.isEmpty && selectors.isSubset(of: callerSelectors)
    }
}
