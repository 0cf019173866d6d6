/// How SDS names resources and shapes validation contexts; the defaults are SPIRE's, which Istio expects.
public struct SDSConfig: Sendable, Hashable {
    /// Serve SDS on the Workload API socket.
    public var isEnabled: Bool
    /// The caller's first identity (`default`).
    public var defaultSVIDName: String
    /// The local trust domain's bundle (`ROOTCA`).
    public var defaultBundleName: String
    /// The local bundle and every federated bundle the caller may see, in one validation context (`ALL`).
    /// Istio's federation setup renames it to `ROOTCA` and clears `defaultBundleName`.
    public var defaultAllBundlesName: String
    /// Send plain `trusted_ca` instead of Envoy's SPIFFE certificate validator (also per Envoy, through the node
    /// metadata key `disable_spiffe_cert_validation`).
    public var disableSPIFFECertValidation: Bool

    public init(
        isEnabled: Bool = true,
        defaultSVIDName: String = "default",
        defaultBundleName: String = "ROOTCA",
        defaultAllBundlesName: String = "ALL",
        disableSPIFFECertValidation: Bool = false
    ) {
        self.isEnabled = isEnabled
        self.defaultSVIDName = defaultSVIDName
        self.defaultBundleName = defaultBundleName
        self.defaultAllBundlesName = defaultAllBundlesName
        self.disableSPIFFECertValidation = disableSPIFFECertValidation
    }
}
