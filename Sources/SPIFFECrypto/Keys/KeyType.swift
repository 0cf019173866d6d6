/// The kinds of key Lanyard generates, named as the configuration spells them (`ca_key_type = "ec-p256"`).
public enum KeyType: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case ecP256 = "ec-p256"
    case ecP384 = "ec-p384"
    case rsa2048 = "rsa-2048"

    public var algorithm: KeyAlgorithm {
        switch self {
        case .ecP256: .ec(.p256)
        case .ecP384: .ec(.p384)
        case .rsa2048: .rsa(bits: 2048)
        }
    }

    public var description: String { rawValue }
}
