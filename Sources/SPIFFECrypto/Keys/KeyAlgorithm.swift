/// The public-key algorithms Lanyard reads: EC on the NIST curves and RSA of at least 2048 bits.
public enum KeyAlgorithm: Hashable, Sendable, CustomStringConvertible {
    case ec(Curve)
    case rsa(bits: Int)

    public enum Curve: String, Hashable, Sendable, CaseIterable {
        case p256 = "P-256"
        case p384 = "P-384"
        case p521 = "P-521"

        /// OpenSSL's group name.
        var groupName: String {
            switch self {
            case .p256: "prime256v1"
            case .p384: "secp384r1"
            case .p521: "secp521r1"
            }
        }

        /// Bytes in one coordinate (and in each of r and s of a signature).
        var coordinateSize: Int {
            switch self {
            case .p256: 32
            case .p384: 48
            case .p521: 66
            }
        }

        init?(groupName: String) {
            guard let curve = Self.allCases.first(where: { $0.groupName == groupName }) else { return nil }
            self = curve
        }
    }

    /// RSA keys shorter than this are refused on import.
    public static let minimumRSABits = 2048

    public var description: String {
        switch self {
        case .ec(let curve): "EC \(curve.rawValue)"
        case .rsa(let bits): "RSA-\(bits)"
        }
    }
}
