import Foundation
import LanyardProto
import SPIFFE
import SwiftProtobuf

/// Builds Envoy `Secret`s from what a caller may see, by the names SPIRE and Istio use.
///
/// Names: a SPIFFE ID is that identity's TLS certificate; `default` the caller's first identity; a trust-domain
/// ID (`spiffe://example.org`) that trust domain's validation context; `ROOTCA` the local one; `ALL` the local
/// and federated bundles together. No names means every identity by SPIFFE ID and every bundle by trust-domain ID.
struct SDSResources {
    static let secretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    static let spiffeValidatorName = "envoy.tls.cert_validator.spiffe"

    let config: SDSConfig
    /// Plain `trusted_ca` instead of the SPIFFE validator (global setting or this Envoy's node metadata).
    let plainValidation: Bool

    init(config: SDSConfig, node: Envoy_Config_Core_V3_Node?) {
        self.config = config
        let perNode = node?.metadata.fields["disable_spiffe_cert_validation"]?.boolValue ?? false
        self.plainValidation = config.disableSPIFFECertValidation || perNode
    }

    /// The secrets for `names` (all when empty), in request order. Throws with the names the caller may not see.
    func secrets(
        for update: WorkloadUpdate,
        names: [String]
    ) throws(UnknownNames) -> [Envoy_Extensions_TransportSockets_Tls_V3_Secret] {
        if names.isEmpty {
            let certificates = update.svids.map { tlsCertificate(name: $0.spiffeID.description, $0) }
            let contexts = update.x509BundlesPEM.keys.sorted().compactMap { trustDomain in
                validationContext(name: trustDomain.idString, [trustDomain], update)
            }
            return certificates + contexts
        }
        var secrets: [Envoy_Extensions_TransportSockets_Tls_V3_Secret] = []
        var unknown: [String] = []
        for name in names {
            if let secret = secret(named: name, update) {
                secrets.append(secret)
            } else {
                unknown.append(name)
            }
        }
        guard unknown.isEmpty else { throw UnknownNames(names: unknown) }
        return secrets
    }

    /// The secret `name` resolves to, or nil when the caller may not see it.
    func secret(named name: String, _ update: WorkloadUpdate) -> Envoy_Extensions_TransportSockets_Tls_V3_Secret? {
        if !name.isEmpty && name == config.defaultSVIDName {
            return update.svids.first.map { tlsCertificate(name: name, $0) }
        }
        if !name.isEmpty && name == config.defaultAllBundlesName {
            let local = [update.localTrustDomain]
            let federated = update.x509BundlesPEM.keys.filter { $0 != update.localTrustDomain }.sorted()
            return validationContext(name: name, local + federated, update)
        }
        if !name.isEmpty && name == config.defaultBundleName {
            return validationContext(name: name, [update.localTrustDomain], update)
        }
        if let svid = update.svids.first(where: { $0.spiffeID.description == name }) {
            return tlsCertificate(name: name, svid)
        }
        if let trustDomain = try? TrustDomain(name), name.hasPrefix(SPIFFEID.schemePrefix),
            update.x509BundlesPEM[trustDomain] != nil
        {
            return validationContext(name: name, [trustDomain], update)
        }
        return nil
    }

    func tlsCertificate(name: String, _ svid: WorkloadX509SVID) -> Envoy_Extensions_TransportSockets_Tls_V3_Secret {
        var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
        secret.name = name
        var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
        certificate.certificateChain.inlineBytes = Data(svid.chainPEM.utf8)
        // Inline bytes: the key travels only in this message, never through a file or a log.
        certificate.privateKey.inlineBytes = Data(svid.privateKeyPEM.utf8)
        secret.tlsCertificate = certificate
        return secret
    }

    func validationContext(
        name: String,
        _ trustDomains: [TrustDomain],
        _ update: WorkloadUpdate
    ) -> Envoy_Extensions_TransportSockets_Tls_V3_Secret? {
        let present = trustDomains.filter { update.x509BundlesPEM[$0] != nil }
        guard !present.isEmpty else { return nil }
        var context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
        if plainValidation {
            context.trustedCa.inlineBytes = Data(present.compactMap { update.x509BundlesPEM[$0] }.joined().utf8)
        } else {
            var validator = Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig()
            validator.trustDomains = present.map { trustDomain in
                var entry = Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig.TrustDomain()
                entry.name = trustDomain.name
                entry.trustBundle.inlineBytes = Data((update.x509BundlesPEM[trustDomain] ?? "").utf8)
                return entry
            }
            context.customValidatorConfig.name = Self.spiffeValidatorName
            // Packing a message we just built cannot fail.
            context.customValidatorConfig.typedConfig =
                (try? Google_Protobuf_Any(message: validator)) ?? Google_Protobuf_Any()
        }
        var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
        secret.name = name
        secret.validationContext = context
        return secret
    }

    /// A content version: FNV-1a of the serialized secrets, stable across restarts so Envoy's
    /// `initial_resource_versions` match.
    static func version(of secrets: [Envoy_Extensions_TransportSockets_Tls_V3_Secret]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for secret in secrets {
            for byte in (try? secret.serializedBytes() as [UInt8]) ?? [] {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return String(hash, radix: 16)
    }

    /// Names a caller asked for but may not see.
    struct UnknownNames: Error {
        let names: [String]
    }
}
