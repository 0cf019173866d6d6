import Glibc

/// A host written as a literal IP address, as the C library reads one (`inet_pton`). Clients of the kubelet and of
/// SPIRE Server need to know: an address cannot be sent as TLS SNI nor checked as a DNS name, and is dialled as is.
public enum IPAddressLiteral: Sendable, Equatable {
    case v4
    case v6

    /// Nil when `host` is a name rather than an address.
    public init?(_ host: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            self = .v4
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            self = .v6
        } else {
            return nil
        }
    }
}
