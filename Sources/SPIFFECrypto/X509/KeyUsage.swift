/// The X.509 key usage bits, with OpenSSL's bit values.
public struct KeyUsage: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public static let digitalSignature = KeyUsage(rawValue: 0x80)
    public static let nonRepudiation = KeyUsage(rawValue: 0x40)
    public static let keyEncipherment = KeyUsage(rawValue: 0x20)
    public static let dataEncipherment = KeyUsage(rawValue: 0x10)
    public static let keyAgreement = KeyUsage(rawValue: 0x08)
    public static let keyCertSign = KeyUsage(rawValue: 0x04)
    public static let cRLSign = KeyUsage(rawValue: 0x02)

    static let names: [(KeyUsage, String)] = [
        (.digitalSignature, "digitalSignature"), (.nonRepudiation, "nonRepudiation"),
        (.keyEncipherment, "keyEncipherment"), (.dataEncipherment, "dataEncipherment"),
        (.keyAgreement, "keyAgreement"), (.keyCertSign, "keyCertSign"), (.cRLSign, "cRLSign"),
    ]

    /// The comma-separated form OpenSSL's extension configuration takes, e.g. `digitalSignature,keyAgreement`.
    public var description: String {
        Self.names.filter { contains($0.0) }.map(\.1).joined(separator: ",")
    }
}

/// The extended key usages an X509-SVID may carry.
public struct ExtendedKeyUsage: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public static let serverAuth = ExtendedKeyUsage(rawValue: 0x1)
    public static let clientAuth = ExtendedKeyUsage(rawValue: 0x2)

    public var description: String {
        [(Self.serverAuth, "serverAuth"), (Self.clientAuth, "clientAuth")]
            .filter { contains($0.0) }.map(\.1).joined(separator: ",")
    }
}
