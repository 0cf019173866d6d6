import Attestation
import Foundation
import LanyardAgent
import SPIFFE
import SPIFFECrypto

/// One parser of untrusted input and the properties it must keep on any bytes: never crash, never touch memory it
/// does not own (AddressSanitizer watches), and give back what it accepted unchanged when asked to write it again.
/// A broken property traps, which libFuzzer reports as a crash with the input that caused it.
enum FuzzTarget: String, CaseIterable {
    case spiffeID = "spiffe-id"
    case selector
    case pem
    case x509
    case jwt
    case jwtClaims = "jwt-claims"
    case bundle
    case cgroup
    case podList = "pod-list"
    case config
    case engineAnswer = "engine-answer"

    /// Feeds one input to the parser; true when the parser accepted it.
    @discardableResult
    func run(_ input: Data, fixtures: FuzzFixtures) -> Bool {
        let text = String(decoding: input, as: UTF8.self)
        switch self {
        case .spiffeID:
            if let trustDomain = try? TrustDomain(text) {
                check((try? TrustDomain(trustDomain.idString)) == trustDomain, "a trust domain must round-trip")
            }
            guard let id = try? SPIFFEID(text) else { return false }
            check((try? SPIFFEID(id.description)) == id, "a parsed SPIFFE ID must parse again to itself")
            return true
        case .selector:
            guard let selector = try? Selector(text) else { return false }
            check((try? Selector(selector.description)) == selector, "a parsed selector must parse again to itself")
            return true
        case .pem:
            _ = try? Certificate.chain(pemEncoded: text)
            guard let blocks = try? PEM.blocks(in: text) else { return false }
            let again = try? PEM.blocks(in: blocks.map { PEM.encode(label: $0.label, der: $0.der) }.joined())
            check(again?.map(\.der) == blocks.map(\.der), "PEM blocks must survive encoding again")
            return true
        case .x509:
            guard let chain = try? Certificate.chain(derConcatenated: input),
                let id = try? X509SVIDVerifier.verify(chain, bundle: fixtures.x509Bundle, at: fixtures.now)
            else { return false }
            check(id.trustDomain == fixtures.bundle.trustDomain, "an accepted SVID is in the bundle's domain")
            return true
        case .jwt:
            guard
                let svid = try? JWTSVIDValidator().validate(
                    text,
                    audience: FuzzFixtures.audience,
                    bundles: { $0 == fixtures.bundle.trustDomain ? fixtures.bundle : nil },
                    at: fixtures.now
                )
            else { return false }
            check(svid.audience.contains(FuzzFixtures.audience), "an accepted token names the audience")
            check(svid.expiresAt > fixtures.now - 60, "an accepted token has not expired")
            return true
        case .jwtClaims:
            guard let token = try? fixtures.token(claims: input),
                let svid = try? JWTSVIDValidator().validate(
                    token,
                    audience: FuzzFixtures.audience,
                    bundles: { $0 == fixtures.signedBundle.trustDomain ? fixtures.signedBundle : nil },
                    at: fixtures.now
                )
            else { return false }
            check(svid.audience.contains(FuzzFixtures.audience), "an accepted token names the audience")
            check(svid.expiresAt.timeIntervalSince(fixtures.now) > -60, "an accepted token has not expired")
            check(svid.spiffeID.trustDomain == fixtures.bundle.trustDomain, "an accepted token is of the domain")
            return true
        case .bundle:
            guard let bundle = try? SPIFFEBundle(trustDomain: fixtures.bundle.trustDomain, jwksData: input) else {
                return false
            }
            // Accepted authorities are certificates; written back out, the bundle reads back the same.
            if (try? X509Bundle(bundle)) != nil, let written = try? bundle.jwksData() {
                let reread = try? SPIFFEBundle(trustDomain: bundle.trustDomain, jwksData: written)
                check(reread?.x509Authorities == bundle.x509Authorities, "X.509 authorities must survive writing")
                check(reread?.jwtAuthorities.map(\.keyID) == bundle.jwtAuthorities.map(\.keyID), "JWT key IDs too")
            }
            return true
        case .cgroup:
            _ = ContainerLocator.cgroupMountRoots(text)
            guard let paths = try? ContainerLocator.cgroupPaths(text) else { return false }
            if let container = try? RuntimeContainerLocator.location(in: paths) {
                check(container.containerID.utf8.count == 64, "a runtime's container ID is 64 hex digits")
            }
            guard let location = try? ContainerLocator.location(in: paths) else { return false }
            check(location.containerID.utf8.count == 64, "a container ID is 64 hex digits")
            return true
        case .podList:
            return input.withUnsafeBytes { (try? PodList.read($0)) != nil }
        case .config:
            return (try? AgentConfig.parse(text, path: "/nonexistent/lanyard-fuzz/lanyard.toml")) != nil
        case .engineAnswer:
            // What a container runtime's socket answers: HTTP framing, then the container's JSON description.
            guard let response = try? HTTPResponse(parsing: Array(input), socketPath: "/fuzz", closed: true),
                response.answer.status == 200
            else { return false }
            check(response.answer.body.count <= input.count, "a body is never longer than the answer")
            return (try? ContainerInspection(json: response.answer.body)) != nil
        }
    }

    private func check(_ condition: Bool, _ property: String) {
        if !condition { fatalError("\(rawValue): property broken: \(property)") }
    }
}
