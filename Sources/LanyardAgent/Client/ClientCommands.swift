import Foundation
import GRPCCore
import LanyardProto
import SPIFFE
import SPIFFECrypto
import SwiftProtobuf
import Upstream

/// What the `lanyard api` commands do, kept out of the executable so it stays argument parsing only.
/// Output never contains private keys or JWT-SVIDs unless the user asked for the token itself.
public enum ClientCommands {
    /// A one-line message for a failed call: the gRPC status in words, or the error itself.
    public static func describe(_ error: any Error) -> String {
        guard let rpc = error as? RPCError else { return "\(error)" }
        return "\(rpc.code): \(rpc.message)"
    }

    /// `lanyard api fetch x509`: prints the SVIDs, and with `directory` writes them like `spire-agent api fetch -write`.
    public static func fetchX509(
        client: WorkloadAPIClient,
        writeTo directory: String?,
        json: Bool
    ) async throws -> String {
        let started = Date()
        let response = try await client.fetchX509SVID()
        let elapsed = Date().timeIntervalSince(started) * 1000
        if let directory { try write(response, to: directory) }
        var svids: [[String: Any]] = []
        var lines = ["Received \(response.svids.count) svid after \(String(format: "%.1f", elapsed))ms", ""]
        for svid in response.svids {
            let chain = try Certificate.chain(derConcatenated: svid.x509Svid)
            let bundle = try Certificate.chain(derConcatenated: svid.bundle)
            lines += ["SPIFFE ID:\t\t\(svid.spiffeID)"]
            if !svid.hint.isEmpty { lines += ["Hint:\t\t\t\(svid.hint)"] }
            lines += [
                "SVID Valid After:\t\(chain[0].notBefore)",
                "SVID Valid Until:\t\(chain[0].notAfter)",
                "SVID Serial:\t\t\(chain[0].serialNumberHex)",
            ]
            for (index, certificate) in chain.dropFirst().enumerated() {
                lines += ["Intermediate #\(index + 1) Valid Until:\t\(certificate.notAfter)"]
            }
            for (index, certificate) in bundle.enumerated() {
                lines += [
                    "CA #\(index + 1) Valid After:\t\(certificate.notBefore)",
                    "CA #\(index + 1) Valid Until:\t\(certificate.notAfter)",
                ]
            }
            lines.append("")
            svids.append([
                "spiffe_id": svid.spiffeID,
                "hint": svid.hint,
                "not_after": ISO8601DateFormatter().string(from: chain[0].notAfter),
                "x509_svid": chain.map(\.pemEncoded).joined(),
                "bundle": bundle.map(\.pemEncoded).joined(),
            ])
        }
        for trustDomain in response.federatedBundles.keys.sorted() {
            lines.append("Federated bundle:\t\(trustDomain)")
        }
        if let directory { lines.append("Writing SVIDs to \(directory)") }
        guard json else { return lines.joined(separator: "\n") }
        let object: [String: Any] = ["svids": svids, "federated_bundles": response.federatedBundles.keys.sorted()]
        return String(
            decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]),
            as: UTF8.self
        )
    }

    /// Files named as spire-agent's `-write` names them: `svid.N.pem`, `svid.N.key` (0600), `bundle.N.pem`,
    /// `federated_bundle.N.M.pem`.
    static func write(_ response: WorkloadAPI_X509SVIDResponse, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (index, svid) in response.svids.enumerated() {
            let chain = try Certificate.chain(derConcatenated: svid.x509Svid)
            let key = try PrivateKey(pkcs8DER: svid.x509SvidKey)
            let bundle = try Certificate.chain(derConcatenated: svid.bundle)
            try AtomicFile.write(
                Data(chain.map(\.pemEncoded).joined().utf8),
                to: "\(directory)/svid.\(index).pem",
                mode: 0o644
            )
            try AtomicFile.write(Data(try key.pemEncoded.utf8), to: "\(directory)/svid.\(index).key", mode: 0o600)
            try AtomicFile.write(
                Data(bundle.map(\.pemEncoded).joined().utf8),
                to: "\(directory)/bundle.\(index).pem",
                mode: 0o644
            )
            for (federatedIndex, trustDomain) in response.federatedBundles.keys.sorted().enumerated() {
                let certificates = try Certificate.chain(
                    derConcatenated: response.federatedBundles[trustDomain] ?? Data()
                )
                try AtomicFile.write(
                    Data(certificates.map(\.pemEncoded).joined().utf8),
                    to: "\(directory)/federated_bundle.\(index).\(federatedIndex).pem",
                    mode: 0o644
                )
            }
        }
    }

    /// `lanyard api fetch jwt`: prints each token with its identity (the token is what the user asked for).
    public static func fetchJWT(client: WorkloadAPIClient, audience: [String], spiffeID: String?) async throws -> String
    {
        let response = try await client.fetchJWTSVID(audience: audience, spiffeID: spiffeID)
        return response.svids.map { "token(\($0.spiffeID)):\n\t\($0.svid)" }.joined(separator: "\n")
    }

    /// `lanyard api fetch wit`: each identity, its expiry and hint; with `directory`, `wit_svid.N.jwt` and its key
    /// `wit_svid.N.key.jwk` (0600). The token is printed only when written nowhere else: it is what the user asked
    /// for, but it is never useful without its key.
    public static func fetchWIT(
        client: WorkloadAPIClient,
        spiffeID: String?,
        writeTo directory: String?
    ) async throws
        -> String
    {
        let response = try await client.fetchWITSVID(spiffeID: spiffeID)
        var lines = ["Received \(response.svids.count) wit-svid", ""]
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        for (index, svid) in response.svids.enumerated() {
            lines.append("SPIFFE ID:\t\(svid.spiffeID)")
            if !svid.hint.isEmpty { lines.append("Hint:\t\t\(svid.hint)") }
            if let expiry = Self.expiry(ofToken: svid.witSvid) { lines.append("Valid Until:\t\(expiry)") }
            if let directory {
                try AtomicFile.write(Data(svid.witSvid.utf8), to: "\(directory)/wit_svid.\(index).jwt", mode: 0o644)
                try AtomicFile.write(
                    Data(svid.witSvidKey.utf8),
                    to: "\(directory)/wit_svid.\(index).key.jwk",
                    mode: 0o600
                )
            } else {
                lines.append("Token:\t\t\(svid.witSvid)")
            }
            lines.append("")
        }
        if let directory { lines.append("Writing WIT-SVIDs to \(directory)") }
        return lines.joined(separator: "\n")
    }

    /// `exp` of a JWS compact token, read without validating it (for display only).
    static func expiry(ofToken token: String) -> Date? {
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3, let bytes = [UInt8](base64URLEncoded: segments[1]),
            let claims = try? JSONParser.parse(bytes).objectValue, let exp = claims["exp"]?.numberValue
        else { return nil }
        return Date(timeIntervalSince1970: exp)
    }

    /// `lanyard api fetch bundles`: the X.509 bundles as PEM and the JWT and WIT bundles as JSON, per trust domain.
    /// An agent that does not issue WIT-SVIDs (UNIMPLEMENTED) shows none.
    public static func fetchBundles(client: WorkloadAPIClient) async throws -> String {
        let x509 = try await client.fetchX509Bundles()
        let jwt = try await client.fetchJWTBundles()
        var wit: [String: String] = [:]
        do {
            wit = try await client.fetchWITBundles().bundles
        } catch let error as RPCError where error.code == .unimplemented {
            wit = [:]
        }
        var lines: [String] = []
        for trustDomain in x509.bundles.keys.sorted() {
            let certificates = try Certificate.chain(derConcatenated: x509.bundles[trustDomain] ?? Data())
            lines += ["x509 bundle (\(trustDomain)):", certificates.map(\.pemEncoded).joined()]
        }
        for trustDomain in jwt.bundles.keys.sorted() {
            lines += [
                "jwt bundle (\(trustDomain)):", String(decoding: jwt.bundles[trustDomain] ?? Data(), as: UTF8.self), "",
            ]
        }
        for trustDomain in wit.keys.sorted() {
            lines += ["wit bundle (\(trustDomain)):", wit[trustDomain] ?? "", ""]
        }
        return lines.joined(separator: "\n")
    }

    /// `lanyard api validate jwt`.
    public static func validateJWT(client: WorkloadAPIClient, audience: String, token: String) async throws -> String {
        let response = try await client.validateJWTSVID(token: token, audience: audience)
        let claims = try response.claims.jsonString()
        return "SVID is valid.\nSPIFFE ID : \(response.spiffeID)\nClaims    : \(claims)"
    }

    /// `lanyard api watch`: one summary line per X509-SVID update until interrupted.
    public static func watch(client: WorkloadAPIClient, print: @Sendable @escaping (String) -> Void) async throws {
        _ = try await client.watchX509SVID(count: Int.max) { response in
            let summary = response.svids.map { svid -> String in
                let notAfter = (try? Certificate.chain(derConcatenated: svid.x509Svid).first?.notAfter).flatMap { $0 }
                return "\(svid.spiffeID) (until \(notAfter.map { "\($0)" } ?? "?"))"
            }
            print("\(Date()): received \(response.svids.count) svid(s): \(summary.joined(separator: ", "))")
        }
    }
}
