import Foundation
import GRPCCore
import LanyardProto
import SPIFFE
import SPIFFECrypto
import SwiftASN1
import Synchronization
import Timing
import X509

extension FakeSPIREServer {
    /// The DER of a certificate as grpc's transport reports it (a swift-certificates value).
    static func derBytes(_ certificate: X509.Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}

/// `spire.api.server.agent.v1.Agent`: node attestation and agent SVID renewal.
struct FakeAgentService: Spire_Api_Server_Agent_V1_Agent.SimpleServiceProtocol {
    let server: FakeSPIREServer

    func attestAgent(
        request: RPCAsyncSequence<Spire_Api_Server_Agent_V1_AttestAgentRequest, any Error>,
        response: RPCWriter<Spire_Api_Server_Agent_V1_AttestAgentResponse>,
        context: ServerContext
    ) async throws {
        try await server.enter("AttestAgent", from: context)
        var messages = request.makeAsyncIterator()
        guard let first = try await messages.next(), case .params(let params)? = first.step else {
            throw RPCError(code: .invalidArgument, message: "the first message must carry params")
        }
        let payload = params.data.payload
        let agentID: SPIFFEID
        let reattestable: Bool
        switch params.data.type {
        case "join_token":
            let token = String(decoding: payload, as: UTF8.self)
            let known = server.state.withLock { $0.joinTokens.remove(token) != nil }
            guard known else {
                throw RPCError(
                    code: .invalidArgument,
                    message: "failed to attest: join token does not exist or has already been used"
                )
            }
            agentID = try SPIFFEID(trustDomain: server.trustDomain, path: "/spire/agent/join_token/\(token)")
            reattestable = false
        case "x509pop":
            agentID = try await x509pop(payload: payload, messages: &messages, response: response)
            reattestable = true
        case "k8s_psat":
            guard let object = try? JSONSerialization.jsonObject(with: payload) as? [String: String],
                let cluster = object["cluster"], let token = object["token"]
            else { throw RPCError(code: .invalidArgument, message: "malformed k8s_psat payload") }
            guard let node = server.state.withLock({ $0.psatTokens[token] }), node.cluster == cluster else {
                throw RPCError(
                    code: .permissionDenied,
                    message: "failed to attest: the token is not valid for cluster \(cluster)"
                )
            }
            agentID = try SPIFFEID(
                trustDomain: server.trustDomain,
                path: "/spire/agent/k8s_psat/\(cluster)/\(node.nodeUID)"
            )
            reattestable = true
        default:
            throw RPCError(
                code: .failedPrecondition,
                message: "could not find node attestor type \"\(params.data.type)\""
            )
        }
        var result = Spire_Api_Server_Agent_V1_AttestAgentResponse()
        result.result.svid = try server.issueAgentSVID(agentID, csrDER: params.params.csr, reattestable: reattestable)
        result.result.reattestable = reattestable
        try await response.write(result)
    }

    /// Chain check against the x509pop CA, then a nonce challenge signed with the node key.
    private func x509pop(
        payload: Data,
        messages: inout RPCAsyncSequence<Spire_Api_Server_Agent_V1_AttestAgentRequest, any Error>.AsyncIterator,
        response: RPCWriter<Spire_Api_Server_Agent_V1_AttestAgentResponse>
    ) async throws -> SPIFFEID {
        guard let object = try? JSONSerialization.jsonObject(with: payload) as? [String: [String]],
            let encoded = object["certificates"], let leafText = encoded.first,
            let leafDER = Data(base64Encoded: leafText)
        else { throw RPCError(code: .invalidArgument, message: "malformed x509pop payload") }
        let leaf = try SPIFFECrypto.Certificate(derEncoded: leafDER)
        guard leaf.isIssued(by: server.x509popAuthority.certificate), leaf.notAfter > server.clock.now else {
            throw RPCError(code: .permissionDenied, message: "x509pop: certificate not trusted")
        }
        let isEC: Bool
        if case .ec = try leaf.publicKey.algorithm { isEC = true } else { isEC = false }
        let kind = isEC ? "ecdsa_signature" : "rsa_signature"
        let nonce = Data((0..<32).map { _ in UInt8.random(in: 0...255) })
        var challenge = Spire_Api_Server_Agent_V1_AttestAgentResponse()
        challenge.challenge = try JSONSerialization.data(withJSONObject: [kind: ["nonce": nonce.base64EncodedString()]])
        try await response.write(challenge)
        guard let answer = try await messages.next(), case .challengeResponse(let body)? = answer.step,
            let reply = try? JSONSerialization.jsonObject(with: body) as? [String: [String: String]],
            let signed = reply[kind], let theirNonce = signed["nonce"].flatMap({ Data(base64Encoded: $0) })
        else { throw RPCError(code: .invalidArgument, message: "x509pop: malformed challenge response") }
        let message = nonce + theirNonce
        let valid: Bool
        if isEC {
            guard let r = signed["r"].flatMap({ Data(base64Encoded: $0) }),
                let s = signed["s"].flatMap({ Data(base64Encoded: $0) }),
                r.count <= 32, s.count <= 32
            else { throw RPCError(code: .invalidArgument, message: "x509pop: malformed ecdsa signature") }
            let raw = Data(repeating: 0, count: 32 - r.count) + r + Data(repeating: 0, count: 32 - s.count) + s
            valid = try leaf.publicKey.isValidSignature(raw, over: message, algorithm: .es256)
        } else {
            guard let signature = signed["signature"].flatMap({ Data(base64Encoded: $0) }) else {
                throw RPCError(code: .invalidArgument, message: "x509pop: malformed rsa signature")
            }
            valid = try leaf.publicKey.isValidSignature(signature, over: message, algorithm: .ps256)
        }
        guard valid else {
            throw RPCError(code: .permissionDenied, message: "x509pop: challenge response does not verify")
        }
        let fingerprint = Digest.sha1(leaf.derEncoded).map { String(format: "%02x", $0) }.joined()
        return try SPIFFEID(trustDomain: server.trustDomain, path: "/spire/agent/x509pop/\(fingerprint)")
    }

    func renewAgent(
        request: Spire_Api_Server_Agent_V1_RenewAgentRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Server_Agent_V1_RenewAgentResponse {
        try await server.enter("RenewAgent", from: context)
        let agent = try server.authenticatedAgent(context)
        let (mustReattest, reattestable) = server.state.withLock {
            ($0.mustReattest, $0.agents[agent]?.reattestable ?? false)
        }
        if mustReattest && reattestable {
            throw RPCError(code: .permissionDenied, message: "agent must reattest")
        }
        var response = Spire_Api_Server_Agent_V1_RenewAgentResponse()
        response.svid = try server.issueAgentSVID(
            agent,
            csrDER: request.params.csr,
            reattestable: reattestable,
            renewal: true
        )
        if server.state.withLock({ $0.losesRenewals }) {
            throw RPCError(code: .unavailable, message: "fake spire server: the renewed svid was lost on purpose")
        }
        return response
    }
}

/// `spire.api.server.svid.v1.SVID`: workload X.509 SVIDs in batches, and JWT-SVIDs.
struct FakeSVIDService: Spire_Api_Server_Svid_V1_SVID.SimpleServiceProtocol {
    let server: FakeSPIREServer

    func batchNewX509SVID(
        request: Spire_Api_Server_Svid_V1_BatchNewX509SVIDRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Server_Svid_V1_BatchNewX509SVIDResponse {
        try await server.enter("BatchNewX509SVID", from: context)
        let agent = try server.authenticatedAgent(context)
        server.state.withLock { $0.batchSizes.append(request.params.count) }
        let entries = Dictionary(uniqueKeysWithValues: server.entries(for: agent).map { ($0.id, $0) })
        var response = Spire_Api_Server_Svid_V1_BatchNewX509SVIDResponse()
        for params in request.params {
            var result = Spire_Api_Server_Svid_V1_BatchNewX509SVIDResponse.Result()
            if let entry = entries[params.entryID] {
                do {
                    let chain = try server.authority.issueX509SVID(
                        csr: CertificateSigningRequest(derEncoded: params.csr),
                        spiffeID: entry.spiffeID,
                        ttl: server.x509SVIDTTL,
                        dnsNames: entry.dnsNames,
                        now: server.clock.now
                    )
                    result.svid = FakeSPIREServer.svid(chain, id: entry.spiffeID)
                } catch {
                    result.status.code = Int32(RPCError.Code.invalidArgument.rawValue)
                    result.status.message = "failed to sign x509-svid: \(error)"
                }
            } else {
                result.status.code = Int32(RPCError.Code.notFound.rawValue)
                result.status.message = "entry not found or not authorized"
            }
            response.results.append(result)
        }
        return response
    }

    func newJWTSVID(
        request: Spire_Api_Server_Svid_V1_NewJWTSVIDRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Server_Svid_V1_NewJWTSVIDResponse {
        try await server.enter("NewJWTSVID", from: context)
        let agent = try server.authenticatedAgent(context)
        guard let entry = server.entries(for: agent).first(where: { $0.id == request.entryID }) else {
            throw RPCError(code: .notFound, message: "entry not found or not authorized")
        }
        guard !request.audience.isEmpty else { throw RPCError(code: .invalidArgument, message: "audience is required") }
        let now = server.clock.now
        var subject = entry.spiffeID
        var audience = request.audience
        switch server.jwtTampering {
        case .subject(let other)?: subject = other
        case .firstAudienceOnly?: audience = [audience[0]]
        case nil: break
        }
        let svid = try server.jwtSigner.sign(
            spiffeID: subject,
            audience: audience,
            expiresAt: now.addingTimeInterval(server.jwtSVIDTTL.timeInterval),
            issuedAt: now
        )
        var response = Spire_Api_Server_Svid_V1_NewJWTSVIDResponse()
        response.svid.token = svid.token
        response.svid.id = FakeSPIREServer.wireID(entry.spiffeID)
        response.svid.expiresAt = Int64(svid.expiresAt.timeIntervalSince1970)
        response.svid.issuedAt = Int64(now.timeIntervalSince1970)
        return response
    }
}

/// `spire.api.server.entry.v1.Entry`: the authorized entries, in full or by the revision sync protocol.
struct FakeEntryService: Spire_Api_Server_Entry_V1_Entry.SimpleServiceProtocol {
    let server: FakeSPIREServer

    func getAuthorizedEntries(
        request: Spire_Api_Server_Entry_V1_GetAuthorizedEntriesRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Server_Entry_V1_GetAuthorizedEntriesResponse {
        try await server.enter("GetAuthorizedEntries", from: context)
        let agent = try server.authenticatedAgent(context)
        var response = Spire_Api_Server_Entry_V1_GetAuthorizedEntriesResponse()
        response.entries = server.entries(for: agent).map(FakeSPIREServer.wireEntry)
        return response
    }

    func syncAuthorizedEntries(
        request: RPCAsyncSequence<Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesRequest, any Error>,
        response: RPCWriter<Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesResponse>,
        context: ServerContext
    ) async throws {
        try await server.enter("SyncAuthorizedEntries", from: context)
        if server.state.withLock({ $0.syncUnimplemented }) {
            throw RPCError(code: .unimplemented, message: "SyncAuthorizedEntries is not implemented")
        }
        let agent = try server.authenticatedAgent(context)
        let entries = server.entries(for: agent)
        let pageSize = server.state.withLock { $0.entrySyncPageSize }
        var messages = request.makeAsyncIterator()
        guard try await messages.next() != nil else { return }
        if pageSize == 0 || entries.isEmpty {
            var all = Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesResponse()
            all.entries = entries.map(FakeSPIREServer.wireEntry)
            try await response.write(all)
            return
        }
        for start in stride(from: 0, to: entries.count, by: pageSize) {
            var page = Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesResponse()
            page.entryRevisions = entries[start..<min(start + pageSize, entries.count)].map { entry in
                var revision = Spire_Api_Server_Entry_V1_EntryRevision()
                revision.id = entry.id
                revision.revisionNumber = entry.revision
                revision.createdAt = entry.createdAt
                return revision
            }
            page.more = start + pageSize < entries.count
            try await response.write(page)
        }
        let byID = Dictionary(uniqueKeysWithValues: entries.map { ($0.id, $0) })
        while let asked = try await messages.next() {
            let wanted = asked.ids.compactMap { byID[$0] }
            var page = Spire_Api_Server_Entry_V1_SyncAuthorizedEntriesResponse()
            page.entries = wanted.map(FakeSPIREServer.wireEntry)
            try await response.write(page)
        }
    }
}

/// `spire.api.server.bundle.v1.Bundle`: the server's bundle (no authentication) and federated ones (agents only).
struct FakeBundleService: Spire_Api_Server_Bundle_V1_Bundle.SimpleServiceProtocol {
    let server: FakeSPIREServer

    func getBundle(
        request: Spire_Api_Server_Bundle_V1_GetBundleRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Types_Bundle {
        try await server.enter("GetBundle", from: context)
        return try server.wireBundle()
    }

    func getFederatedBundle(
        request: Spire_Api_Server_Bundle_V1_GetFederatedBundleRequest,
        context: ServerContext
    ) async throws -> Spire_Api_Types_Bundle {
        try await server.enter("GetFederatedBundle", from: context)
        _ = try server.authenticatedAgent(context)
        guard let bundle = server.state.withLock({ $0.federatedBundles[request.trustDomain] }) else {
            throw RPCError(code: .notFound, message: "bundle for \(request.trustDomain) not found")
        }
        var wire = Spire_Api_Types_Bundle()
        wire.trustDomain = bundle.trustDomain.name
        wire.x509Authorities = bundle.x509Authorities.map { der in
            var certificate = Spire_Api_Types_X509Certificate()
            certificate.asn1 = der
            return certificate
        }
        return wire
    }
}
