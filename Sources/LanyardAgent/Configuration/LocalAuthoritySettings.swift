public import SPIFFECrypto

/// `[upstream.local]`: the embedded CA of a standalone node.
public struct LocalAuthoritySettings: Sendable, Equatable {
    public var caKeyType: KeyType
    public var caTTL: Duration
    public var x509SVIDTTL: Duration
    public var jwtSVIDTTL: Duration

    static func read(_ section: SectionReader) -> LocalAuthoritySettings {
        let settings = LocalAuthoritySettings(
            caKeyType: section.choice("ca_key_type", default: KeyType.ecP256),
            caTTL: section.duration("ca_ttl", default: .seconds(8760 * 3600)),
            x509SVIDTTL: section.duration("x509_svid_ttl", default: .seconds(3600)),
            jwtSVIDTTL: section.duration("jwt_svid_ttl", default: .seconds(300))
        )
        if settings.x509SVIDTTL >= settings.caTTL { section.problem("x509_svid_ttl", "must be shorter than ca_ttl") }
        return settings
    }
}
