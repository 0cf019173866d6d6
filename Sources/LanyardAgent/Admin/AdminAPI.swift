import Attestation
import Endpoints
import Foundation
import IdentityCache
import Logging
import SPIFFE
import SPIFFECrypto
import Timing
import Upstream

/// The admin endpoint's routes (version 1), answered from the agent's live state:
///
/// - `GET /v1/status`: ``StatusReport``
/// - `GET /v1/entries`: ``EntriesReport``
/// - `GET /v1/explain?pid=N`, or `?uid=U&gid=G` for a hypothetical caller: ``ExplainReport``
/// - `GET /v1/log-level`, `PUT /v1/log-level` with `{"level": "debug"}`: `{"level": …, "previous": …}`
///
/// Errors are `{"code": …, "message": …}` with gRPC's code names (`PERMISSION_DENIED`, `NOT_FOUND`,
/// `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `UNIMPLEMENTED`).
struct AdminAPI: Sendable {
    static let apiVersion = "v1"

    let config: AgentConfig
    let cache: IdentityCache
    let attestors: AttestorSet
    let readiness: Readiness
    let server: WorkloadAPIServer
    let callerLimits: CallerLimits
    let localAuthority: LocalAuthority?
    let spireServer: SPIREServerUpstream?
    let logLevel: LogLevelBox?
    let startedAt: Date
    let clock: any AgentClock
    let logger: Logger

    func handle(_ request: AdminServer.Request) async -> AdminServer.Response {
        switch (request.method, request.path) {
        case ("GET", "/v1/status"): return Self.json(status())
        case ("GET", "/v1/entries"): return Self.json(entries())
        case ("GET", "/v1/explain"): return await explain(request.query)
        case ("GET", "/v1/log-level"):
            return Self.json(["level": Self.name(of: logLevel?.current ?? config.logLevel.level)])
        case ("PUT", "/v1/log-level"): return setLogLevel(request.body, by: request.caller)
        case (_, "/v1/status"), (_, "/v1/entries"), (_, "/v1/explain"), (_, "/v1/log-level"):
            return .error(405, code: "UNIMPLEMENTED", "\(request.method) is not supported on \(request.path)")
        default:
            return .error(
                404,
                code: "NOT_FOUND",
                "no route \(request.path); this agent serves /v1/status, /v1/entries, /v1/explain and /v1/log-level"
            )
        }
    }

    // MARK: - Status and entries

    func status() -> StatusReport {
        let now = clock.now
        let state = cache.state
        let (ready, reason) = readiness.check(at: now)
        var upstream = StatusReport.Upstream(
            kind: config.spire == nil ? "local" : "spire",
            lastSyncAttempt: state.lastSyncAttempt,
            lastSuccessfulSync: state.lastSuccessfulSync,
            lastError: state.lastSyncError,
            failingSince: state.failingSince,
            servingSnapshotOf: state.restoredFrom
        )
        if let spire = config.spire {
            upstream.serverAddress = "\(spire.host):\(spire.port)"
            let identity = spireServer?.currentIdentity
            upstream.agentId = identity?.svid.spiffeID.description
            upstream.agentSvidExpiry = identity?.svid.expiresAt
        }
        return StatusReport(
            apiVersion: Self.apiVersion,
            version: LanyardVersion.current,
            startedAt: startedAt,
            uptimeSeconds: max(0, now.timeIntervalSince(startedAt)),
            mode: config.spire == nil ? "standalone" : "fleet",
            trustDomain: config.trustDomain.name,
            ready: ready,
            readiness: reason,
            logLevel: Self.name(of: logLevel?.current ?? config.logLevel.level),
            entries: state.entries.count,
            svidsCached: state.svids.count,
            svidCacheLimit: state.svidLimit,
            earliestSvidExpiry: state.svids.values.map(\.svid.expiresAt).min(),
            streams: cache.subscriberCount,
            openCallsByMethod: server.openCallsByMethod,
            connections: server.openConnections,
            maxConnectionsPerCaller: callerLimits.maxConnections,
            maxCallsPerCaller: callerLimits.maxCalls,
            callers: server.callerUsage.sorted { $0.key < $1.key }.map {
                StatusReport.CallerUsage(uid: $0.key, connections: $0.value.connections, calls: $0.value.calls)
            },
            caGenerations: localAuthority?.generationValidity(at: now).map {
                StatusReport.CAGeneration(notBefore: $0.notBefore, notAfter: $0.notAfter, signing: $0.signing)
            },
            upstream: upstream
        )
    }

    func entries() -> EntriesReport {
        let state = cache.state
        return EntriesReport(
            apiVersion: Self.apiVersion,
            entries: state.entries.map { entry in
                let held = state.svids[entry.id]
                return EntriesReport.Entry(
                    id: entry.id,
                    spiffeId: entry.spiffeID.description,
                    selectors: entry.selectors.map(\.description).sorted(),
                    x509SvidTtlSeconds: entry.x509SVIDTTL?.timeInterval,
                    jwtSvidTtlSeconds: entry.jwtSVIDTTL?.timeInterval,
                    hint: entry.hint,
                    federatesWith: entry.federatesWith.map(\.name).sorted(),
                    dnsNames: entry.dnsNames,
                    revision: entry.revision,
                    svidSerial: held.flatMap { Self.serial(of: $0.svid) },
                    svidExpiry: held?.svid.expiresAt
                )
            }
        )
    }

    // MARK: - Explain

    private func explain(_ query: [String: String]) async -> AdminServer.Response {
        if let text = query["pid"] {
            guard let pid = Int32(text), pid > 0 else {
                return .error(400, code: "INVALID_ARGUMENT", "pid must be a positive number, not \"\(text)\"")
            }
            return await explain(pid: pid)
        }
        if let text = query["uid"] {
            guard let uid = UInt32(text) else {
                return .error(400, code: "INVALID_ARGUMENT", "uid must be a number, not \"\(text)\"")
            }
            guard let gid = query["gid"].map({ UInt32($0) }) ?? UInt32?.some(uid) else {
                return .error(400, code: "INVALID_ARGUMENT", "gid must be a number")
            }
            return explain(uid: uid, gid: gid)
        }
        return .error(400, code: "INVALID_ARGUMENT", "give pid, or uid (and gid)")
    }

    /// Attests `pid` now with every attestor, issuing nothing.
    private func explain(pid: Int32) async -> AdminServer.Response {
        let process: WorkloadProcess
        do {
            process = try UnixAttestor.process(pid: pid)
        } catch {
            return .error(404, code: "NOT_FOUND", "no process \(pid): it exited, or never ran (\(error.message))")
        }
        var reports: [ExplainReport.Attestor] = []
        var selectors: Set<Selector> = []
        for attestor in attestors.current {
            let started = ContinuousClock.now
            let result: Result<[Selector], any Error>
            do { result = .success(try await attestor.attest(process)) } catch { result = .failure(error) }
            let elapsed = ContinuousClock.now - started
            let milliseconds = elapsed.timeInterval * 1000
            switch result {
            case .success(let found):
                selectors.formUnion(found)
                reports.append(
                    .init(name: attestor.name, selectors: found.map(\.description).sorted(), milliseconds: milliseconds)
                )
            case .failure(let error):
                reports.append(.init(name: attestor.name, selectors: [], milliseconds: milliseconds, error: "\(error)"))
            }
        }
        // What the attestors read must belong to the process asked about: one that exited meanwhile is reported.
        guard (try? UnixAttestor.process(pid: pid)) == process else {
            return .error(404, code: "NOT_FOUND", "process \(pid) exited or changed credentials during attestation")
        }
        let caller = ExplainReport.Caller(pid: pid, uid: process.uid, gid: process.gid, hypothetical: false)
        return Self.json(report(caller: caller, attestors: reports, selectors: selectors))
    }

    /// The unix selectors of a uid and gid, for a caller that need not exist.
    private func explain(uid: UInt32, gid: UInt32) -> AdminServer.Response {
        guard let unix = attestors.current.compactMap({ $0 as? UnixAttestor }).first else {
            return .error(400, code: "FAILED_PRECONDITION", "the unix attestor is disabled; explain a pid instead")
        }
        let selectors: [Selector]
        do {
            selectors = try unix.selectors(uid: uid, gid: gid)
        } catch {
            return .error(500, code: "INTERNAL", "\(error)")
        }
        let attestor = ExplainReport.Attestor(
            name: unix.name,
            selectors: selectors.map(\.description).sorted(),
            milliseconds: 0
        )
        let caller = ExplainReport.Caller(pid: nil, uid: uid, gid: gid, hypothetical: true)
        return Self.json(report(caller: caller, attestors: [attestor], selectors: Set(selectors)))
    }

    /// Every entry against `selectors`, the identities and bundles they give, and the verdict.
    func report(
        caller: ExplainReport.Caller,
        attestors: [ExplainReport.Attestor],
        selectors: Set<Selector>
    )
        -> ExplainReport
    {
        let state = cache.state
        let now = clock.now
        var matches: [ExplainReport.EntryMatch] = []
        var identities: [ExplainReport.Identity] = []
        var hints: Set<String> = []
        var federated: Set<String> = []
        for entry in state.entries {
            let missing = entry.selectors.subtracting(selectors).map(\.description).sorted()
            matches.append(
                .init(
                    entryId: entry.id,
                    spiffeId: entry.spiffeID.description,
                    matched: missing.isEmpty,
                    missingSelectors: missing
                )
            )
            guard missing.isEmpty else { continue }
            // As the Workload API does: a hint already used by an earlier identity is left out.
            if !entry.hint.isEmpty && !hints.insert(entry.hint).inserted { continue }
            let held = state.svids[entry.id].flatMap { $0.svid.expiresAt > now ? $0.svid : nil }
            identities.append(
                .init(
                    spiffeId: entry.spiffeID.description,
                    entryId: entry.id,
                    hint: entry.hint,
                    svidSerial: held.flatMap(Self.serial),
                    svidExpiry: held?.expiresAt
                )
            )
            for trustDomain in entry.federatesWith where state.federatedBundles[trustDomain] != nil {
                federated.insert(trustDomain.name)
            }
        }
        var sds: [String] = []
        if config.sds.isEnabled && !identities.isEmpty {
            sds = identities.map(\.spiffeId) + [config.sds.defaultSVIDName, config.trustDomain.idString]
            sds += federated.sorted().compactMap { try? TrustDomain($0).idString }
            sds += [config.sds.defaultBundleName, config.sds.defaultAllBundlesName]
        }
        let failed = attestors.filter { $0.error != nil }.map(\.name)
        let verdict: String
        if !failed.isEmpty {
            verdict =
                "attestation fails (\(failed.joined(separator: ", "))): the Workload API would answer UNAVAILABLE"
        } else if !identities.isEmpty {
            verdict = "would receive \(identities.count) \(identities.count == 1 ? "identity" : "identities")"
        } else if let closest = matches.min(by: { $0.missingSelectors.count < $1.missingSelectors.count }) {
            verdict =
                "no entry matches: closest is \(closest.spiffeId) missing \(closest.missingSelectors.joined(separator: ", "))"
        } else {
            verdict = "no entry matches: the agent has no entries"
        }
        return ExplainReport(
            apiVersion: Self.apiVersion,
            caller: caller,
            attestors: attestors,
            selectors: selectors.map(\.description).sorted(),
            entries: matches,
            identities: identities,
            sdsResources: sds,
            federatedBundles: federated.sorted(),
            verdict: verdict
        )
    }

    // MARK: - Log level

    private func setLogLevel(_ body: Data, by caller: WorkloadProcess) -> AdminServer.Response {
        guard let logLevel else {
            return .error(400, code: "FAILED_PRECONDITION", "this agent's log level cannot be changed while it runs")
        }
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let name = object["level"] as? String
        else {
            return .error(400, code: "INVALID_ARGUMENT", "the body must be {\"level\": \"…\"}")
        }
        guard let setting = LogLevelSetting(rawValue: name) else {
            return .error(
                400,
                code: "INVALID_ARGUMENT",
                "\"\(name)\" is not a log level: \(LogLevelSetting.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let previous = logLevel.current
        logLevel.current = setting.level
        logger.notice(
            "log level changed through the admin endpoint",
            metadata: [
                LogKey.callerPID: "\(caller.pid)", LogKey.callerUID: "\(caller.uid)",
                "log.level": "\(name)", "log.previous_level": "\(Self.name(of: previous))",
            ]
        )
        return Self.json(["level": name, "previous": Self.name(of: previous)])
    }

    // MARK: - Helpers

    static func name(of level: Logger.Level) -> String {
        LogLevelSetting.allCases.first { $0.level == level }?.rawValue ?? "\(level)"
    }

    static func serial(of svid: IssuedSVID) -> String? {
        (try? Certificate.chain(derConcatenated: svid.chainDER))?.first?.serialNumberHex
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    static func json(_ value: some Encodable) -> AdminServer.Response {
        do {
            return AdminServer.Response(status: 200, body: try encoder.encode(value))
        } catch {
            return .error(500, code: "INTERNAL", "cannot encode the answer: \(error)")
        }
    }
}
