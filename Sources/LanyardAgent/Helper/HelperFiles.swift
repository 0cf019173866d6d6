import Foundation
import LanyardProto
import SPIFFE
import SPIFFECrypto

/// What the helper writes, made from Workload API answers: PEM for X.509, the JWKS documents for JWT bundles, the
/// token itself for JWT-SVIDs. Pure functions of the answer and the configuration, so each rule is tested alone.
enum HelperFiles {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The SVID `hint` selects (the first when there is no hint), as clients of the Workload API pick one.
    static func select(_ response: WorkloadAPI_X509SVIDResponse, hint: String) throws(Failure) -> WorkloadAPI_X509SVID {
        guard let first = response.svids.first else { throw Failure(description: "the agent sent no X509-SVID") }
        guard !hint.isEmpty else { return first }
        guard let hinted = response.svids.first(where: { $0.hint == hint }) else {
            throw Failure(
                description: "no X509-SVID has hint \"\(hint)\" (the agent offered: "
                    + response.svids.map { "\($0.spiffeID) hint \"\($0.hint)\"" }.joined(separator: ", ") + ")"
            )
        }
        return hinted
    }

    /// The certificate, key and bundle files (and federated bundles) of one X509-SVID answer.
    static func x509(
        _ response: WorkloadAPI_X509SVIDResponse,
        config: HelperConfig,
        now: Date
    ) throws(Failure)
        -> [CertificateDirectory.File]
    {
        let svid = try select(response, hint: config.hint)
        let chain: [Certificate]
        let authorities: [Certificate]
        do {
            chain = try Certificate.chain(derConcatenated: svid.x509Svid)
            authorities = try Certificate.chain(derConcatenated: svid.bundle)
        } catch {
            throw Failure(description: "the agent sent certificates that do not parse: \(error)")
        }
        guard let leaf = chain.first else { throw Failure(description: "the agent sent an empty certificate chain") }
        var files: [CertificateDirectory.File] = []
        let intermediates = Array(chain.dropFirst())
        func pem(_ certificates: [Certificate]) -> Data {
            Data(certificates.map(\.pemEncoded).joined().utf8)
        }
        func kept(_ certificates: [Certificate]) -> [Certificate] {
            config.omitExpired ? certificates.filter { $0.notAfter > now } : certificates
        }
        if let name = config.svidFileName, let keyName = config.svidKeyFileName {
            let certificates = config.addIntermediatesToBundle ? [leaf] : chain
            files.append(.init(name: name, content: pem(certificates), mode: config.certFileMode))
            let key = PEM.encode(label: "PRIVATE KEY", der: svid.x509SvidKey)
            files.append(.init(name: keyName, content: Data(key.utf8), mode: config.keyFileMode))
        }
        if let name = config.svidBundleFileName {
            var bundle = kept(authorities) + (config.addIntermediatesToBundle ? intermediates : [])
            if config.includeFederatedDomains && config.mergeFederatedBundles {
                for (_, der) in response.federatedBundles.sorted(by: { $0.key < $1.key }) {
                    bundle += kept((try? Certificate.chain(derConcatenated: der)) ?? [])
                }
            }
            files.append(.init(name: name, content: pem(bundle), mode: config.certFileMode))
        }
        if config.includeFederatedDomains && !config.mergeFederatedBundles {
            for (id, der) in response.federatedBundles.sorted(by: { $0.key < $1.key }) {
                guard let trustDomain = try? TrustDomain(id) else {
                    throw Failure(description: "the agent sent a federated bundle for \"\(id)\", not a trust domain")
                }
                let certificates: [Certificate]
                do {
                    certificates = try Certificate.chain(derConcatenated: der)
                } catch {
                    throw Failure(description: "the federated bundle of \(trustDomain.name) does not parse: \(error)")
                }
                files.append(
                    .init(
                        name: "\(config.federatedBundlesDirectory)/\(trustDomain.name).pem",
                        content: pem(kept(certificates)),
                        mode: config.certFileMode
                    )
                )
            }
        }
        return files
    }

    /// The JWT bundles file: one JSON object, each trust domain's name to its JWKS document.
    static func jwtBundles(
        _ response: WorkloadAPI_JWTBundlesResponse,
        name: String,
        mode: mode_t
    ) throws(Failure)
        -> CertificateDirectory.File
    {
        var text = "{"
        for (index, (id, jwks)) in response.bundles.sorted(by: { $0.key < $1.key }).enumerated() {
            guard let trustDomain = try? TrustDomain(id),
                (try? JSONSerialization.jsonObject(with: jwks)) is [String: Any]
            else {
                throw Failure(description: "the agent sent a JWT bundle for \"\(id)\" that is not a JWKS document")
            }
            // Trust domain names are lower-case letters, digits, '.', '-' and '_': nothing to escape.
            text += (index == 0 ? "" : ",") + "\n  \"\(trustDomain.name)\": " + String(decoding: jwks, as: UTF8.self)
        }
        text += response.bundles.isEmpty ? "}\n" : "\n}\n"
        return .init(name: name, content: Data(text.utf8), mode: mode)
    }

    /// When a JWT-SVID must be fetched again: half-way through its lifetime (`iat` to `exp`), as the agent renews
    /// X509-SVIDs. The token comes from the local agent over its socket; only its times are read here.
    static func refreshTime(of token: String, receivedAt now: Date) throws(Failure) -> Date {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Data(base64URLEncoded: parts[1]),
            let claims = try? JSONSerialization.jsonObject(with: payload) as? [String: Any],
            let exp = (claims["exp"] as? NSNumber)?.doubleValue
        else { throw Failure(description: "the agent sent a JWT-SVID whose claims do not parse") }
        let expiresAt = Date(timeIntervalSince1970: exp)
        let issuedAt = (claims["iat"] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue) } ?? now
        let start = min(max(issuedAt, now.addingTimeInterval(-86_400)), now)
        return start.addingTimeInterval(max(expiresAt.timeIntervalSince(start) / 2, 1))
    }
}
