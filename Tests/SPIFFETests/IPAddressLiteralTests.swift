import SPIFFE
import Testing

@Suite("IP address literals")
struct IPAddressLiteralTests {
    @Test(
        "addresses are told from names as the C library reads them",
        arguments: [
            ("127.0.0.1", IPAddressLiteral.v4), ("10.0.0.254", .v4), ("::1", .v6), ("fe80::1", .v6),
            ("::ffff:10.0.0.1", .v6),
        ]
    )
    func addresses(host: String, expected: IPAddressLiteral) {
        #expect(IPAddressLiteral(host) == expected)
    }

    @Test(
        "names, bracketed and partial addresses are not literals",
        arguments: ["localhost", "spire-server.spire.svc", "[::1]", "10.0.0", "1.2.3.4.5", "", "01.2.3.4x"]
    )
    func names(host: String) {
        #expect(IPAddressLiteral(host) == nil)
    }
}
