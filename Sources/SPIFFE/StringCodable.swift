/// A value written as one string and read back through its validating initializer, so a JSON document can
/// never hold an invalid SPIFFE ID, trust domain or selector.
public protocol StringCodable: Codable, CustomStringConvertible {
    associatedtype ParseError: Error & CustomStringConvertible
    /// Parses and validates the string form.
    init(_ string: String) throws(ParseError)
}

extension StringCodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            try self.init(string)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "\"\(string)\": \(error.description)"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
