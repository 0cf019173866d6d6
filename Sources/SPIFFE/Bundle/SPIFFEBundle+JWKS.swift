public import Foundation

extension SPIFFEBundle {
    /// The two JSON shapes a bundle is written in.
    public enum JWKSFormat: Sendable {
        /// The SPIFFE bundle format: X.509 and JWT authorities with `use`, plus `spiffe_sequence` and
        /// `spiffe_refresh_hint` when known.
        case spiffe
        /// What the Workload API's `FetchJWTBundles` sends, as SPIRE does: a standard JWKS of the JWT
        /// authorities only, without `use` or any `spiffe_*` member.
        case standardJWTAuthorities
        /// What `FetchWITBundles` sends: a standard JWKS of the WIT authorities only, each with its `kid`.
        case standardWITAuthorities
    }

    static let x509SVIDUse = "x509-svid"
    static let jwtSVIDUse = "jwt-svid"
    static let witSVIDUse = "wit-svid"
    /// A bundle document larger than this is refused before it is parsed.
    public static let maximumDocumentSize = 4 << 20

    /// Reads a SPIFFE bundle (JWKS) for `trustDomain`.
    ///
    /// Keys with an unknown `use` or `kty` are skipped, as the spec says; an `x509-svid` key must carry exactly
    /// one certificate, and a `jwt-svid` or `wit-svid` key a non-empty `kid` no other JWT or WIT key has.
    public init(trustDomain: TrustDomain, jwksData data: Data) throws(BundleError) {
        guard data.count <= Self.maximumDocumentSize else {
            throw BundleError("document is \(data.count) bytes; the limit is \(Self.maximumDocumentSize)")
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch let error as DecodingError {
            throw BundleError("malformed JSON: \(Self.describe(error))")
        } catch {
            throw BundleError("malformed JSON: \(error)")
        }
        guard let keys = document.keys else { throw BundleError("missing \"keys\" member") }
        self.init(trustDomain: trustDomain, sequenceNumber: document.sequence, refreshHint: document.refreshHint)
        for (index, key) in keys.enumerated() {
            guard let keyType = key.keyType, !keyType.isEmpty else {
                throw BundleError("key \(index) has no \"kty\"")
            }
            guard ["EC", "RSA"].contains(keyType) else { continue }
            switch key.use {
            case Self.x509SVIDUse:
                let chain = key.certificateChain ?? []
                guard chain.count == 1 else {
                    throw BundleError(
                        "x509-svid key \(index) must have exactly one certificate in x5c, found \(chain.count)"
                    )
                }
                guard let der = Data(base64Encoded: chain[0]), !der.isEmpty else {
                    throw BundleError("x509-svid key \(index) has an x5c entry that is not base64")
                }
                x509Authorities.append(der)
            case Self.jwtSVIDUse, Self.witSVIDUse:
                let use = key.use ?? ""
                guard let keyID = key.keyID, !keyID.isEmpty else {
                    throw BundleError("\(use) key \(index) has no \"kid\"")
                }
                guard jwtAuthority(keyID: keyID) == nil, witAuthority(keyID: keyID) == nil else {
                    throw BundleError("\(use) key \(index) repeats the key ID \"\(keyID)\"")
                }
                let jwk = try Self.publicKey(from: key, index: index)
                if use == Self.jwtSVIDUse {
                    jwtAuthorities.append(JWTAuthority(keyID: keyID, key: jwk))
                } else {
                    witAuthorities.append(JWTAuthority(keyID: keyID, key: jwk))
                }
            default:
                continue
            }
        }
    }

    /// Writes the bundle as JSON in `format`. Output is deterministic (sorted members) so equal bundles give
    /// equal bytes, which lets streams skip sends that change nothing.
    ///
    /// - Parameter x509AuthorityKey: the public key of a DER certificate as a JWK. Consumers such as go-jose
    ///   require `kty` and the key members next to `x5c`, and only a crypto module can read them from the
    ///   certificate (`SPIFFECrypto` supplies it).
    public func jwksData(
        format: JWKSFormat = .spiffe,
        x509AuthorityKey: (Data) throws -> JSONWebKey
    ) rethrows -> Data {
        var keys: [JSONWebKey] = []
        if format == .spiffe {
            for der in x509Authorities {
                var key = try x509AuthorityKey(der).withoutMetadata
                key.use = Self.x509SVIDUse
                key.certificateChain = [der.base64EncodedString()]
                keys.append(key)
            }
        }
        func published(_ authorities: [JWTAuthority], use: String) -> [JSONWebKey] {
            authorities.map { authority in
                var key = authority.key
                key.keyID = authority.keyID
                key.use = format == .spiffe ? use : nil
                key.certificateChain = nil
                return key
            }
        }
        if format != .standardWITAuthorities { keys += published(jwtAuthorities, use: Self.jwtSVIDUse) }
        if format != .standardJWTAuthorities { keys += published(witAuthorities, use: Self.witSVIDUse) }
        let document = Document(
            keys: keys.map(Document.Key.init),
            sequence: format == .spiffe ? sequenceNumber : nil,
            refreshHint: format == .spiffe ? refreshHint : nil
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        return (try? encoder.encode(document)) ?? Data()
    }

    private static func publicKey(from key: Document.Key, index: Int) throws(BundleError) -> JSONWebKey {
        let keyType = key.keyType ?? ""
        switch keyType {
        case "EC":
            guard let curve = key.curve, let x = key.x, let y = key.y,
                Data(base64URLEncoded: x) != nil, Data(base64URLEncoded: y) != nil
            else {
                throw BundleError(
                    "\(key.use ?? "") key \(index): an EC key needs \"crv\", \"x\" and \"y\" in base64url"
                )
            }
            return JSONWebKey(keyType: keyType, curve: curve, x: x, y: y)
        default:
            guard let modulus = key.modulus, let exponent = key.exponent,
                Data(base64URLEncoded: modulus) != nil, Data(base64URLEncoded: exponent) != nil
            else {
                throw BundleError("\(key.use ?? "") key \(index): an RSA key needs \"n\" and \"e\" in base64url")
            }
            return JSONWebKey(keyType: keyType, modulus: modulus, exponent: exponent)
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context),
            .valueNotFound(_, let context):
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "at \(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// The wire shape of the document; every member optional so that checks give precise messages.
    private struct Document: Codable {
        struct Key: Codable {
            var keyType: String?
            var use: String?
            var keyID: String?
            var curve: String?
            var x: String?
            var y: String?
            var modulus: String?
            var exponent: String?
            var certificateChain: [String]?

            init(_ key: JSONWebKey) {
                keyType = key.keyType
                use = key.use
                keyID = key.keyID
                curve = key.curve
                x = key.x
                y = key.y
                modulus = key.modulus
                exponent = key.exponent
                certificateChain = key.certificateChain
            }

            /// The same member names as ``JSONWebKey``; here every member is optional, for precise errors.
            typealias CodingKeys = JSONWebKey.CodingKeys
        }

        var keys: [Key]?
        var sequence: UInt64?
        var refreshHint: Int64?

        init(keys: [Key], sequence: UInt64?, refreshHint: Int64?) {
            self.keys = keys
            self.sequence = sequence
            self.refreshHint = refreshHint
        }

        enum CodingKeys: String, CodingKey {
            case keys
            case sequence = "spiffe_sequence"
            case refreshHint = "spiffe_refresh_hint"
        }
    }
}
