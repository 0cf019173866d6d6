import Foundation
import SPIFFE
import SPIFFECrypto

/// The agent's side of node attestation: the first message's payload, and the answer to each challenge.
///
/// Payloads follow SPIRE's plugins: `join_token` sends the token; `x509pop` sends the node's chain and signs
/// SHA-256(challenge nonce ‖ own nonce) with the node key; `k8s_psat` sends the cluster and the projected token.
struct NodeAttestation: Sendable {
    let attestor: SPIREServerConfig.NodeAttestor

    /// The attestation data type and payload of the first message. Files are read now, so rotated tokens and
    /// certificates are used as they are at this moment.
    func payload() throws(UpstreamError) -> Data {
        switch attestor {
        case .joinToken(let token):
            guard !token.isEmpty else {
                throw UpstreamError(
                    .attestation,
                    "no stored agent identity and upstream.spire.join_token is empty; create one with spire-server token generate"
                )
            }
            return Data(token.utf8)
        case .joinTokenFile(let path):
            return Data(try SecretFile.read(path, key: "upstream.spire.join_token_file").utf8)
        case .x509pop(let certificatePath, _):
            let chain = try certificates(at: certificatePath)
            return try json(["certificates": chain.map { $0.derEncoded.base64EncodedString() }])
        case .k8sPSAT(let cluster, let tokenPath):
            guard let data = FileManager.default.contents(atPath: tokenPath) else {
                throw UpstreamError(.attestation, "cannot read the projected service account token at \(tokenPath)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return try json(["cluster": cluster, "token": token])
        }
    }

    /// The answer to a server challenge.
    func respond(to challenge: Data) throws(UpstreamError) -> Data {
        guard case .x509pop(_, let keyPath) = attestor else {
            throw UpstreamError(
                .attestation,
                "the server sent a challenge, which \(attestor.pluginName) does not expect"
            )
        }
        guard let object = try? JSONSerialization.jsonObject(with: challenge) as? [String: Any] else {
            throw UpstreamError(.attestation, "the x509pop challenge is not a JSON object")
        }
        let key = try privateKey(at: keyPath)
        var ownNonce = [UInt8](repeating: 0, count: 32)
        for index in ownNonce.indices { ownNonce[index] = UInt8.random(in: 0...255) }
        let nonce = Data(ownNonce)
        func challengeNonce(_ kind: String) throws(UpstreamError) -> Data {
            guard let body = object[kind] as? [String: Any], let text = body["nonce"] as? String,
                let value = Data(base64Encoded: text), !value.isEmpty
            else { throw UpstreamError(.attestation, "the x509pop challenge has no \(kind).nonce") }
            return value
        }
        return try UpstreamError.wrapping(.attestation, "cannot answer the x509pop challenge") {
            if object["ecdsa_signature"] != nil {
                guard case .ec(.p256) = key.algorithm else {
                    throw UpstreamError(
                        .attestation,
                        "x509pop with an ECDSA node key needs P-256, not \(key.algorithm)"
                    )
                }
                let signature = try key.signature(over: challengeNonce("ecdsa_signature") + nonce, algorithm: .es256)
                let half = signature.count / 2
                return try json([
                    "ecdsa_signature": [
                        "nonce": nonce.base64EncodedString(),
                        "r": signature.prefix(half).base64EncodedString(),
                        "s": signature.suffix(half).base64EncodedString(),
                    ]
                ])
            }
            if object["rsa_signature"] != nil {
                let signature = try key.signature(over: challengeNonce("rsa_signature") + nonce, algorithm: .ps256)
                return try json([
                    "rsa_signature": [
                        "nonce": nonce.base64EncodedString(), "signature": signature.base64EncodedString(),
                    ]
                ])
            }
            throw UpstreamError(.attestation, "the x509pop challenge is neither ecdsa_signature nor rsa_signature")
        }
    }

    private func certificates(at path: String) throws(UpstreamError) -> [Certificate] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UpstreamError(.attestation, "cannot read the x509pop certificate at \(path)")
        }
        return try UpstreamError.wrapping(.attestation, "the x509pop certificate at \(path) is not PEM") {
            try Certificate.chain(pemEncoded: String(decoding: data, as: UTF8.self))
        }
    }

    private func privateKey(at path: String) throws(UpstreamError) -> PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UpstreamError(.attestation, "cannot read the x509pop private key at \(path)")
        }
        return try UpstreamError.wrapping(.attestation, "the x509pop private key at \(path) is not usable") {
            try PrivateKey(pemEncoded: String(decoding: data, as: UTF8.self))
        }
    }

    private func json(_ object: [String: Any]) throws(UpstreamError) -> Data {
        do {
            return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        } catch {
            throw UpstreamError(.attestation, "cannot encode the attestation payload")
        }
    }
}
