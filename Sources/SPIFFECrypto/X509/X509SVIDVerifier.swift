internal import COpenSSL
public import Foundation
public import SPIFFE

/// The X509-SVID rules of the SPIFFE spec, and chain verification against a bundle through OpenSSL.
public enum X509SVIDVerifier {
    /// Checks a chain's shape by the X509-SVID spec, without trusting it, and returns the leaf's SPIFFE ID.
    ///
    /// The leaf needs exactly one URI SAN holding a SPIFFE ID with a path, `cA=false`, a critical key usage with
    /// digitalSignature and without keyCertSign or cRLSign, and serverAuth plus clientAuth if it has an extended
    /// key usage. Every other certificate must be a CA with keyCertSign, and a SPIFFE ID on it has no path.
    public static func validate(_ chain: [Certificate]) throws(CryptoError) -> SPIFFEID {
        guard let leaf = chain.first else { throw invalid("certificate chain is empty") }
        let uris = leaf.uriSANs
        guard uris.count == 1 else {
            throw invalid("leaf certificate must have exactly one URI SAN, found \(uris.count)")
        }
        let spiffeID: SPIFFEID
        do {
            spiffeID = try SPIFFEID(uris[0])
        } catch {
            throw invalid("leaf certificate URI SAN is not a valid SPIFFE ID: \(error)")
        }
        guard !spiffeID.path.isEmpty else { throw invalid("leaf certificate SPIFFE ID must have a non-root path") }
        guard !leaf.isCA else { throw invalid("leaf certificate must not have CA flag set to true") }
        guard let usage = leaf.keyUsage else { throw invalid("leaf certificate must have the key usage extension") }
        guard leaf.isKeyUsageCritical else { throw invalid("leaf certificate key usage extension must be critical") }
        guard usage.contains(.digitalSignature) else {
            throw invalid("leaf certificate must have 'digitalSignature' set as key usage")
        }
        guard !usage.contains(.keyCertSign) else {
            throw invalid("leaf certificate must not have 'keyCertSign' set as key usage")
        }
        guard !usage.contains(.cRLSign) else {
            throw invalid("leaf certificate must not have 'cRLSign' set as key usage")
        }
        if let extended = leaf.extendedKeyUsage, !extended.isSuperset(of: [.serverAuth, .clientAuth]) {
            throw invalid("leaf certificate extended key usage must include serverAuth and clientAuth")
        }
        if leaf.hasEmptySubject && !leaf.isSubjectAltNameCritical {
            throw invalid("leaf certificate with an empty subject must mark the SAN extension critical")
        }
        for (index, signer) in chain.dropFirst().enumerated() {
            guard signer.isCA else { throw invalid("signing certificate \(index + 1) must have CA flag set to true") }
            guard signer.keyUsage?.contains(.keyCertSign) == true else {
                throw invalid("signing certificate \(index + 1) must have 'keyCertSign' set as key usage")
            }
            for uri in signer.uriSANs where uri.hasPrefix(SPIFFEID.schemePrefix) {
                if let id = try? SPIFFEID(uri), id.path.isEmpty { continue }
                throw invalid("signing certificate \(index + 1) SPIFFE ID must not have a path")
            }
        }
        return spiffeID
    }

    /// Validates the chain's shape, then verifies it up to an authority of `bundle` at `time`.
    ///
    /// Any authority in the bundle is a trust anchor, even when it is itself an intermediate, as go-spiffe does.
    public static func verify(
        _ chain: [Certificate],
        bundle: X509Bundle,
        at time: Date
    ) throws(CryptoError) -> SPIFFEID {
        let spiffeID = try validate(chain)
        guard spiffeID.trustDomain == bundle.trustDomain else {
            throw CryptoError(
                .untrustedChain,
                "spiffe id \(spiffeID) is not in the bundle's trust domain \(bundle.trustDomain)"
            )
        }
        guard !bundle.authorities.isEmpty else {
            throw CryptoError(.untrustedChain, "the bundle for \(bundle.trustDomain) has no x509 authorities")
        }
        try verifyChain(chain, anchors: bundle.authorities, at: time)
        return spiffeID
    }

    /// Verifies `chain` with the bundle chosen by the leaf's trust domain.
    public static func verify(
        _ chain: [Certificate],
        bundles: [TrustDomain: X509Bundle],
        at time: Date
    ) throws(CryptoError) -> SPIFFEID {
        let spiffeID = try validate(chain)
        guard let bundle = bundles[spiffeID.trustDomain] else {
            throw CryptoError(.untrustedChain, "no x509 bundle found for trust domain \(spiffeID.trustDomain)")
        }
        return try verify(chain, bundle: bundle, at: time)
    }

    /// `X509_verify_cert` with the bundle as trust anchors and the rest of the chain as untrusted intermediates.
    static func verifyChain(_ chain: [Certificate], anchors: [Certificate], at time: Date) throws(CryptoError) {
        guard let leaf = chain.first else { throw invalid("certificate chain is empty") }
        guard let store = X509_STORE_new() else { throw OpenSSL.error(.openSSLFailure, "cannot allocate a store") }
        defer { X509_STORE_free(store) }
        for anchor in anchors {
            try OpenSSL.check(X509_STORE_add_cert(store, anchor.pointer), "cannot add a trust anchor")
        }
        guard let intermediates = lanyard_sk_X509_new_null() else {
            throw OpenSSL.error(.openSSLFailure, "cannot allocate the intermediate list")
        }
        defer { lanyard_sk_X509_free(intermediates) }
        for certificate in chain.dropFirst() where lanyard_sk_X509_push(intermediates, certificate.pointer) <= 0 {
            throw OpenSSL.error(.openSSLFailure, "cannot add an intermediate")
        }
        guard let context = X509_STORE_CTX_new() else {
            throw OpenSSL.error(.openSSLFailure, "cannot allocate a verification context")
        }
        defer { X509_STORE_CTX_free(context) }
        try OpenSSL.check(X509_STORE_CTX_init(context, store, leaf.pointer, intermediates), "cannot start verification")
        X509_STORE_CTX_set_flags(context, UInt(X509_V_FLAG_PARTIAL_CHAIN))
        X509_STORE_CTX_set_time(context, 0, time_t(time.timeIntervalSince1970))
        let verified = X509_verify_cert(context) == 1
        _ = OpenSSL.drainErrors()
        guard verified else {
            let code = X509_STORE_CTX_get_error(context)
            let depth = X509_STORE_CTX_get_error_depth(context)
            let reason = String(cString: X509_verify_cert_error_string(Int(code)))
            throw CryptoError(.untrustedChain, "x509 chain does not verify: \(reason) (certificate \(depth))")
        }
    }

    private static func invalid(_ message: String) -> CryptoError { CryptoError(.invalidX509SVID, message) }
}
