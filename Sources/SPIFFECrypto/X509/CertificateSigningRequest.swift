internal import COpenSSL
public import Foundation
public import SPIFFE

/// A PKCS#10 certificate signing request: how a workload key reaches a CA without the key leaving the agent.
public struct CertificateSigningRequest: Hashable, Sendable {
    let storage: OpenSSLObject
    public let derEncoded: Data

    var pointer: OpaquePointer { storage.pointer }

    private init(taking pointer: OpaquePointer) throws(CryptoError) {
        self.storage = OpenSSLObject(pointer) { X509_REQ_free($0) }
        self.derEncoded = try OpenSSL.der("cannot encode the csr") { i2d_X509_REQ(pointer, $0) }
    }

    /// Builds and signs a CSR for `privateKey`, asking for `spiffeID` as the URI SAN and `dnsNames` as DNS SANs.
    public init(privateKey: PrivateKey, spiffeID: SPIFFEID?, dnsNames: [String] = []) throws(CryptoError) {
        guard let request = X509_REQ_new() else { throw OpenSSL.error(.openSSLFailure, "cannot allocate a csr") }
        do throws(CryptoError) {
            try OpenSSL.check(X509_REQ_set_version(request, 0), "cannot set the csr version")
            try OpenSSL.check(X509_REQ_set_pubkey(request, privateKey.pointer), "cannot set the csr public key")
            let uris = spiffeID.map { [$0.description] } ?? []
            if !uris.isEmpty || !dnsNames.isEmpty {
                let names = try GeneralNames.make(uris: uris, dnsNames: dnsNames)
                defer { GENERAL_NAMES_free(names) }
                guard let extensions = lanyard_sk_X509_EXTENSION_new_null() else {
                    throw OpenSSL.error(.openSSLFailure, "cannot allocate csr extensions")
                }
                defer { lanyard_sk_X509_EXTENSION_pop_free(extensions) }
                guard let san = X509V3_EXT_i2d(NID_subject_alt_name, 0, UnsafeMutableRawPointer(names)) else {
                    throw OpenSSL.error(.openSSLFailure, "cannot encode subject alternative names")
                }
                guard lanyard_sk_X509_EXTENSION_push(extensions, san) > 0 else {
                    X509_EXTENSION_free(san)
                    throw OpenSSL.error(.openSSLFailure, "cannot add subject alternative names")
                }
                try OpenSSL.check(X509_REQ_add_extensions(request, extensions), "cannot add csr extensions")
            }
            guard X509_REQ_sign(request, privateKey.pointer, OpenSSL.digest(for: privateKey.algorithm)) > 0 else {
                throw OpenSSL.error(.openSSLFailure, "cannot sign the csr")
            }
        } catch {
            X509_REQ_free(request)
            throw error
        }
        try self.init(taking: request)
    }

    /// Reads a DER CSR.
    public init(derEncoded der: Data) throws(CryptoError) {
        guard let request = OpenSSL.decodeDER(der, free: { X509_REQ_free($0) }, { d2i_X509_REQ(nil, $0, $1) }) else {
            throw OpenSSL.error(.invalidCSR, "not a DER certificate signing request (\(der.count) bytes)")
        }
        try self.init(taking: request)
    }

    /// Reads a PEM `CERTIFICATE REQUEST`.
    public init(pemEncoded pem: String) throws(CryptoError) {
        let blocks = try PEM.blocks(in: pem).filter {
            $0.label == "CERTIFICATE REQUEST" || $0.label == "NEW CERTIFICATE REQUEST"
        }
        guard blocks.count == 1 else {
            throw CryptoError(.invalidPEM, "expected one PEM CERTIFICATE REQUEST block, found \(blocks.count)")
        }
        try self.init(derEncoded: blocks[0].der)
    }

    public var pemEncoded: String { PEM.encode(label: "CERTIFICATE REQUEST", der: derEncoded) }

    /// The key the CSR asks to certify.
    public var publicKey: PublicKey {
        get throws(CryptoError) {
            guard let key = X509_REQ_get_pubkey(pointer) else {
                throw OpenSSL.error(.invalidCSR, "csr has no readable public key")
            }
            return try PublicKey(taking: key)
        }
    }

    /// Proof of possession: the CSR is signed by the private key of the public key it carries.
    public var hasValidSignature: Bool {
        guard let key = X509_REQ_get0_pubkey(pointer) else { return false }
        let valid = X509_REQ_verify(pointer, key) == 1
        _ = OpenSSL.drainErrors()
        return valid
    }

    private var requestedNames: GeneralNames.Names {
        guard let extensions = X509_REQ_get_extensions(pointer) else { return GeneralNames.Names() }
        defer { lanyard_sk_X509_EXTENSION_pop_free(extensions) }
        return GeneralNames.read(consuming: X509V3_get_d2i(extensions, NID_subject_alt_name, nil, nil))
    }

    /// The URI SANs the CSR asks for.
    public var uriSANs: [String] { requestedNames.uris }
    /// The DNS SANs the CSR asks for.
    public var dnsNames: [String] { requestedNames.dnsNames }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.derEncoded == rhs.derEncoded }

    public func hash(into hasher: inout Hasher) { hasher.combine(derEncoded) }
}
